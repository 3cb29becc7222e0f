/**
 * The planner service on a worker thread of the bench process: its own event loop, V8 heap and
 * NATS connection, as a separately deployed service has, without a third process to schedule on
 * a 2-core machine. Posts 'leader' once it leads; stops and posts 'closed' when sent 'close'.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { connectNats } from '../src/nats/connect.js';
import { silentLogger } from '../src/observability/logger.js';
import { startPlannerService } from '../src/service/plannerService.js';

const spec = workerData as { url: string; streamName: string; subjectPrefix: string; snapshotBucket: string; leaseBucket: string };
const nc = await connectNats({ url: spec.url });
const service = await startPlannerService({
  nc, logger: silentLogger, streamName: spec.streamName, subjectPrefix: spec.subjectPrefix,
  snapshotBucket: spec.snapshotBucket, leaseBucket: spec.leaseBucket,
});
await service.whenLeader;
parentPort!.postMessage('leader');
parentPort!.on('message', (m) => {
  if (m !== 'close') return;
  void (async () => {
    await service.close();
    await nc.close();
    parentPort!.postMessage('closed');
  })();
});
