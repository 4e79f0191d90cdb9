import { existsSync } from "node:fs";
import type { Browser } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

/**
 * Debian's Chromium driven by playwright-core (no browser download). Missing
 * on a laptop: the suite skips with a loud message; under CI=true a missing
 * browser is a failure, since .ci/run installs it.
 */
export function chromiumAvailable(): boolean {
  if (existsSync(CHROMIUM)) return true;
  const message = `\n*** ${CHROMIUM} not found: browser tests ${process.env.CI === "true" ? "FAIL" : "are SKIPPED"} (apt-get install chromium) ***\n`;
  if (process.env.CI === "true") throw new Error(message);
  console.warn(message);
  return false;
}

export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}
