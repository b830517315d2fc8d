/**
 * The dashboard at `GET /`, behind HTTP Basic (password = the API key; the app
 * applies the check before this route). The page is one server-rendered shell
 * holding the first data as JSON (the recent deployments, the nodes, the
 * rejected commands); the inline script (webhook/dashboard-assets.ts) draws
 * it with DOM text nodes and keeps it live from `/api/events` snapshots.
 */
import { Hono } from "hono";
import { html, raw } from "hono/html";
import { createHash } from "node:crypto";
import { SCRIPT, STYLE } from "./dashboard-assets.ts";
import type { View } from "./view.ts";

/** How many deployments the page lists. */
export const DASHBOARD_DEPLOYMENTS = 20;

/** JSON that is safe inside a <script> element: no `<` can close it. */
export const scriptJson = (value: unknown) => JSON.stringify(value).replace(/</g, "\\u003c");

const hash = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;

/**
 * Only the page's own script and style run, and it talks only to its own
 * origin: even a value that slipped past the escaping could not run code.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `script-src ${hash(SCRIPT)}`,
  `style-src ${hash(STYLE)}`,
  "connect-src 'self'",
  "img-src data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** The whole page, with the data it starts from. */
export function renderDashboard(input: { fleet: string; data: unknown }) {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>arbeider · ${input.fleet}</title>
<style>${raw(STYLE)}</style>
</head>
<body>
<header class="top">
  <h1>arbeider</h1><span class="fleet">fleet <strong>${input.fleet}</strong></span>
  <span class="summary"><span id="conn" class="off">○ connecting</span></span>
</header>
<main id="live"><noscript>The dashboard needs JavaScript; <code>bun scripts/deploy.ts status</code> shows the same.</noscript></main>
<script id="data" type="application/json">${raw(scriptJson(input.data))}</script>
<script>${raw(SCRIPT)}</script>
</body>
</html>`;
}

/** The dashboard's routes, for the fleet `fleet`, drawn from `view`. */
export function createDashboard(options: { fleet: string; view: View; now?: () => number }): Hono {
  const { fleet, view } = options;
  const app = new Hono();
  app.get("/", (c) => {
    c.header("cache-control", "no-store");
    c.header("content-security-policy", CONTENT_SECURITY_POLICY);
    const data = { limit: DASHBOARD_DEPLOYMENTS, deployments: view.list(DASHBOARD_DEPLOYMENTS), nodes: view.nodes(), rejections: view.rejections() };
    return c.html(renderDashboard({ fleet, data }));
  });
  return app;
}
