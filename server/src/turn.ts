/**
 * Event-loop turns, counted: a turn ends when the check phase runs
 * (setImmediate), which is also when outboxes flush. A connection that
 * delivers a burst (thousands of commands read in one turn) takes its
 * budget, then yields, so other connections are served and what it caused
 * leaves in the flush before it goes on.
 */
let turn = 0;
let counting = false;

function nextTurn(): void {
  turn++;
  counting = false;
}

function currentTurn(): number {
  if (!counting) {
    counting = true;
    setImmediate(nextTurn);
  }
  return turn;
}

/** How much of something one holder may do per turn. */
export class TurnBudget {
  private turn = -1;
  private used = 0;

  constructor(private readonly perTurn: number) {}

  /** Takes one unit; false when this turn's budget is spent (go on in the next turn). */
  take(): boolean {
    const now = currentTurn();
    if (now !== this.turn) {
      this.turn = now;
      this.used = 0;
    }
    return ++this.used <= this.perTurn;
  }
}
