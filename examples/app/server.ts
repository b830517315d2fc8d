/**
 * A tiny application to deploy with arbeider (examples/docker-compose.yml):
 * an HTTP server that answers `GET /health` with 200 and `GET /` with the
 * commit it was started at, read once at start from the REVISION file that
 * the repository's update.sh writes. After a deployment, `GET /` shows the
 * new commit only if update.sh restarted the server on the new checkout.
 * Run it as `sh serve.sh` (which starts it again whenever it exits).
 */
import { readFileSync } from "node:fs";

const revision = (() => {
  try {
    return readFileSync(new URL("REVISION", import.meta.url), "utf8").trim();
  } catch {
    return "unknown"; // no deployment has run update.sh yet
  }
})();

const server = Bun.serve({
  port: Number(process.env.PORT ?? 3000),
  fetch(request) {
    const { pathname } = new URL(request.url);
    if (pathname === "/health") return new Response("ok\n");
    if (pathname === "/") return Response.json({ revision, pid: process.pid });
    return new Response("not found\n", { status: 404 });
  },
});
console.log(`app at ${revision} listening on port ${server.port}`);
