/**
 * The dashboard at `GET /`, behind HTTP Basic (password = the API key; the app
 * applies the check before these routes). A placeholder for now: the live
 * page reads `/api/deployments`, `/api/nodes` and `/api/events` with the same
 * Basic credentials. Routes beyond `/` belong under `/ui/`, which the app
 * protects too.
 */
import { Hono } from "hono";

/** The dashboard's routes, for the fleet `fleet`. */
export function createDashboard(options: { fleet: string }): Hono {
  const app = new Hono();
  app.get("/", (c) =>
    c.html(
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>arbeider: ${escape(options.fleet)}</title></head>` +
        `<body><h1>arbeider fleet ${escape(options.fleet)}</h1>` +
        `<p>See <a href="/api/deployments">deployments</a> and <a href="/api/nodes">nodes</a>.</p></body></html>`,
    ),
  );
  return app;
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}
