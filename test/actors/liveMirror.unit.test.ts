import { describe, expect, it } from 'vitest';
import type { InspectionEvent } from 'xstate';
import { LiveMirror } from '../../src/actors/liveMirror.js';
import { createEmbeddedRuntime } from '../../src/runtime/embeddedRuntime.js';
import { sessionMachine } from '../../src/machines/sessionMachine.js';
import { toPersistedSnapshot } from '../../src/machines/xstateSnapshot.js';

describe('LiveMirror', () => {
  it('runs each session as a live actor that reaches the same state as the log, visible to an inspector', async () => {
    const runtime = await createEmbeddedRuntime();
    const seen: InspectionEvent[] = [];
    const mirror = new LiveMirror(runtime.planner, (e) => seen.push(e));
    const submit = await runtime.planner.handle('live1', { type: 'SubmitInput', text: '- Summarise the notes\n- Which tone?' });
    const dispatch = submit.events.find((e) => e.type === 'TaskDispatched')!;
    const { taskId, dispatchId } = dispatch.data as { taskId: string; dispatchId: string };
    const done = await runtime.planner.handle('live1', { type: 'TaskCompleted', taskId, dispatchId, output: 'notes summarised' });

    const actor = mirror.actor('live1')!;
    expect(actor.getSnapshot().value).toEqual({ active: 'awaitingClarification' });
    // The live xstate actor forwarded to its real task actors, and reached the same state as the
    // compiled fold (toEqual: a field xstate left undefined is one the fold removed).
    expect(actor.getSnapshot().children[taskId]!.getSnapshot().value).toBe('Completed');
    expect(sessionMachine.getPersistedSnapshot(actor.getSnapshot())).toEqual(toPersistedSnapshot(done.state.snapshot));
    expect(seen.some((e) => e.type === '@xstate.event' && e.event.type === 'TaskCompleted')).toBe(true);
    expect(seen.some((e) => e.type === '@xstate.actor' && (e.actorRef as { id?: string }).id === taskId)).toBe(true);
    // The session is shown starting: from idle, with the events that started it.
    const sessionSnapshots = seen.filter((e) => e.type === '@xstate.snapshot' && e.actorRef === actor).map((e) => (e as unknown as { snapshot: { value: unknown } }).snapshot.value);
    expect(seen.filter((e) => e.type === '@xstate.event' && e.actorRef === actor).map((e) => (e as { event: { type: string } }).event.type).slice(0, 3)).toEqual(['xstate.init', 'SessionStarted', 'TasksPlanned']);
    expect(sessionSnapshots[0]).not.toEqual(sessionSnapshots.at(-1));
    mirror.stop();
    await runtime.close();
  });
});
