import { expect, it } from "vitest";
import { TurnBudget } from "../../server/src/turn.js";

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** How many units `budget` gives in one synchronous run (one turn), up to `tries`. */
const burst = (budget: TurnBudget, tries = 1000) => {
  let taken = 0;
  for (let i = 0; i < tries && budget.take(); i++) taken++;
  return taken;
};

it("gives a holder exactly its budget in one turn, and the budget again in the next", async () => {
  const budget = new TurnBudget(64);
  expect(burst(budget)).toBe(64);
  expect(budget.take()).toBe(false);
  await nextTurn();
  expect(burst(budget)).toBe(64);
  await nextTurn();
  expect(burst(budget)).toBe(64);
});

it("never refuses a quiet holder, and a burst after quiet turns gets its whole budget", async () => {
  const budget = new TurnBudget(64);
  for (let i = 0; i < 500; i++) {
    expect(budget.take()).toBe(true); // one command a turn, for 500 turns
    await nextTurn();
  }
  for (let quiet = 0; quiet < 40; quiet++) {
    for (let i = 0; i < quiet % 16; i++) {
      budget.take();
      await nextTurn();
    }
    expect(burst(budget)).toBe(64);
    await nextTurn();
  }
});

it("counts each holder apart", () => {
  const a = new TurnBudget(10);
  const b = new TurnBudget(10);
  expect(burst(a)).toBe(10);
  expect(burst(b)).toBe(10);
});
