// Worker threads do not inherit the parent's tsx loader on Node 20: register it, then load the TS.
import { register } from 'tsx/esm/api';

register();
await import('./serviceWorker.ts');
