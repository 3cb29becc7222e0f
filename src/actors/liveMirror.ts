import { createActor, type Actor, type InspectionEvent, type Observer } from 'xstate';
import { sessionMachine } from '../machines/sessionMachine.js';
import type { SessionState } from '../machines/sessionState.js';
import { toPersistedSnapshot } from '../machines/xstateSnapshot.js';
import type { CommitListener } from './planner.js';

/** A live session actor (xstate), as the mirror runs it for the inspector. */
export type SessionActor = Actor<typeof sessionMachine>;

/** Where a mirror hears of committed events: the planner, or a follower of a session's log. */
export interface CommitSource {
  onCommit(listener: CommitListener): () => void;
}

/**
 * Runs each session's statechart as a live xstate actor beside the planner (or beside a follower
 * of a session's log on NATS), fed the same committed events, so developers can watch the machines
 * (and their task actors) in an inspector such as `@statelyai/inspect`. The mirror only observes:
 * its effect actions are the machine's no-ops, and the planner's decisions never depend on it.
 */
export class LiveMirror {
  private readonly actors = new Map<string, SessionActor>();
  private readonly off: () => void;

  constructor(
    source: CommitSource,
    private readonly inspect: Observer<InspectionEvent> | ((event: InspectionEvent) => void),
  ) {
    this.off = source.onCommit(({ sessionId, events, state }) => {
      let actor = this.actors.get(sessionId);
      if (!actor) {
        // A session that starts in this commit is shown starting: from the machine's initial
        // state, fed the commit's events. One seen first later (loaded after a restart, a watch
        // joining late) starts from its state.
        if (events[0]?.sequence !== 1) return this.start(sessionId, state);
        actor = this.start(sessionId);
      }
      for (const event of events) actor.send(event);
    });
  }

  /** The live actor of a session, if the mirror has seen it. */
  actor(sessionId: string): SessionActor | undefined {
    return this.actors.get(sessionId);
  }

  stop(): void {
    this.off();
    for (const actor of this.actors.values()) actor.stop();
    this.actors.clear();
  }

  private start(sessionId: string, state?: SessionState): SessionActor {
    const snapshot = state && (toPersistedSnapshot(state.snapshot) as ReturnType<typeof sessionMachine.getPersistedSnapshot>);
    const actor = createActor(sessionMachine, { id: sessionId, input: { sessionId }, ...(snapshot ? { snapshot } : {}), inspect: this.inspect });
    actor.start();
    this.actors.set(sessionId, actor);
    return actor;
  }
}
