/**
 * Debian's Chromium for the dashboard tests, driven by playwright-core (never
 * a downloaded browser): one headless browser per test file, a fresh context
 * per page with HTTP Basic credentials, and every error the page's script
 * throws collected so a test can insist there was none. When
 * /usr/bin/chromium is missing the tests are reported skipped, with the reason.
 */
import { afterAll, beforeAll } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { ROOT } from "./helpers.ts";
import { skipNote } from "./skip.ts";

export const CHROMIUM = "/usr/bin/chromium";
const ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

export const haveChromium = existsSync(CHROMIUM);
/** `testIf(title(name), ...)`: skipped, with the reason in its name, when Chromium is missing. */
export const { testIf, title } = skipNote("dashboard browser", haveChromium ? undefined : `${CHROMIUM} is missing (apt-get install chromium, or run make test as root)`);

/** Screenshots for a person to look at. */
export const OUTPUT = join(ROOT, "tests/output");

/** A browser for the whole file, started in beforeAll when Chromium is there. */
export function useBrowser(): () => Browser {
  let browser: Browser | undefined;
  beforeAll(async () => {
    if (haveChromium) browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
  }, 30_000);
  afterAll(async () => {
    await browser?.close();
  });
  return () => browser!;
}

export interface Opened {
  page: Page;
  /** Errors the page's scripts threw so far. */
  errors: string[];
  /** Every URL the page requested so far, in order. */
  requests: string[];
  close(): Promise<void>;
}

/** Opens `url` as an operator would (Basic credentials, `colorScheme`), and waits until the page is live and has read everything once and drawn it. */
export async function openDashboard(browser: Browser, url: string, password: string, options: { width?: number; height?: number; dark?: boolean } = {}): Promise<Opened> {
  const context = await browser.newContext({
    viewport: { width: options.width ?? 1280, height: options.height ?? 900 },
    httpCredentials: { username: "operator", password },
    colorScheme: options.dark ? "dark" : "light",
  });
  const page = await context.newPage();
  const errors: string[] = [];
  const requests: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("request", (request) => requests.push(request.url()));
  page.on("dialog", (dialog) => void dialog.accept());
  await page.goto(`${url}/`);
  await page.locator("#conn.on").waitFor({ timeout: 10_000 });
  await page.waitForFunction(() => Number(document.body.dataset.synced) >= 1, undefined, { timeout: 10_000 });
  // The reading is applied at once and drawn at the next frame: a test that marks elements waits for that draw.
  await drawn(page);
  return { page, errors, requests, close: () => context.close() };
}

/** Saves a full-page screenshot as tests/output/<name>.png; returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(OUTPUT, { recursive: true });
  const path = join(OUTPUT, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Resolves once the page has drawn everything scheduled so far (two animation frames). */
export const drawn = (page: Page) => page.evaluate(() => new Promise<void>((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve()))));
