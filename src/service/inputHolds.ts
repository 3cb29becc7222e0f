/**
 * Which inputs hold their sessions back, so that each session's inputs are applied in stream order:
 * an input that was nak'd (it failed, or waited behind another) holds the session's later inputs
 * until it is applied; an input a previous leader left unapplied (the backlog read at start) holds
 * them until it is delivered here, or until its hold expires, since it may in fact have been acked.
 */
export class InputHolds {
  /** Stream sequences that hold each session: its later inputs wait. */
  private readonly held = new Map<string, Set<number>>();
  /** Backlog inputs not delivered yet, and when their hold ends. */
  private readonly expiring = new Map<number, number>();

  constructor(private readonly now: () => number) {}

  /**
   * Holds the session behind a backlog input until it is delivered or `holdMs` have passed. A
   * newer hold of the same input extends it; one no longer listed by a later backlog read keeps its
   * own expiry, so no hold outlives its time (however often the backlog is read again).
   */
  holdBacklog(sessionId: string, seq: number, holdMs: number): void {
    this.hold(sessionId, seq);
    this.expiring.set(seq, Math.max(this.expiring.get(seq) ?? 0, this.now() + holdMs));
  }

  /** Holds the session behind `seq` until {@link applied} is called for it. */
  hold(sessionId: string, seq: number): void {
    const seqs = this.held.get(sessionId);
    if (seqs) seqs.add(seq);
    else this.held.set(sessionId, new Set([seq]));
  }

  /** `seq` has been delivered: a backlog hold on it no longer expires (it holds until applied). */
  delivered(seq: number): void {
    this.expiring.delete(seq);
  }

  /** Whether an earlier input of the session holds `seq` back; expired backlog holds are released. */
  isBlocked(sessionId: string, seq: number): boolean {
    const seqs = this.held.get(sessionId);
    if (!seqs) return false;
    let blocked = false;
    const now = this.now();
    for (const s of seqs) {
      if (s >= seq) continue;
      const until = this.expiring.get(s);
      if (until !== undefined && until <= now) {
        // Never delivered within the hold: it was acked by the previous leader after all.
        this.expiring.delete(s);
        seqs.delete(s);
        continue;
      }
      blocked = true;
    }
    if (seqs.size === 0) this.held.delete(sessionId);
    return blocked;
  }

  /** `seq` is applied (or rejected): it holds nothing any more. */
  applied(sessionId: string, seq: number): void {
    this.expiring.delete(seq);
    const seqs = this.held.get(sessionId);
    if (!seqs) return;
    seqs.delete(seq);
    if (seqs.size === 0) this.held.delete(sessionId);
  }

  /** Forgets every hold (a leader stepping down: the next one reads the backlog again). */
  clear(): void {
    this.held.clear();
    this.expiring.clear();
  }
}
