/**
 * The dashboard's inline style sheet and script (no build step, no CDN: the
 * page works offline). The script keeps the page live without reloading it:
 * it listens to `/api/events` with EventSource and, on each event, fetches the
 * page again and swaps in its `#live` part, so every piece of HTML is rendered
 * by the server in one place (webhook/dashboard.ts). Same-origin requests
 * carry the browser's HTTP Basic credentials.
 */

export const STYLE = `
:root {
  color-scheme: light dark;
  --bg: #f6f8fa; --panel: #fff; --text: #1f2328; --muted: #59636e; --line: #d1d9e0;
  --ok: #1a7f37; --ok-bg: #dafbe1; --bad: #cf222e; --bad-bg: #ffebe9;
  --run: #9a6700; --run-bg: #fff8c5; --skip: #0969da; --skip-bg: #ddf4ff;
  --wait: #59636e; --wait-bg: #eff2f5;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --panel: #151b23; --text: #e6edf3; --muted: #9198a1; --line: #3d444d;
    --ok: #3fb950; --ok-bg: #12261e; --bad: #f85149; --bad-bg: #2d1416;
    --run: #d29922; --run-bg: #2e2410; --skip: #4493f8; --skip-bg: #121d2f;
    --wait: #9198a1; --wait-bg: #21262d;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; }
code, .mono { font-family: ui-monospace, SFMono-Regular, "DejaVu Sans Mono", Menlo, monospace; font-size: 12.5px; }
header.top { display: flex; align-items: center; gap: 16px; padding: 12px 24px; background: var(--panel);
  border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 1; }
header.top h1 { font-size: 18px; margin: 0; letter-spacing: .2px; }
header.top .fleet { color: var(--muted); }
header.top .summary { margin-left: auto; display: flex; gap: 12px; align-items: center; color: var(--muted); }
#conn { font-weight: 600; }
#conn.on { color: var(--ok); } #conn.off { color: var(--bad); }
main { max-width: 1280px; margin: 0 auto; padding: 16px 24px 40px; }
#live { display: grid; gap: 22px; }
a { color: inherit; text-decoration-color: var(--muted); }
.stats { display: flex; flex-wrap: wrap; gap: 12px; margin: 0; }
.stat { background: var(--panel); border: 1px solid var(--line); border-left: 5px solid var(--c, var(--line)); border-radius: 10px;
  padding: 8px 16px; min-width: 180px; }
.stat .n { font-size: 22px; font-weight: 700; color: var(--c, var(--text)); }
.stat .l { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .5px; }
.stat .l .mono { text-transform: none; letter-spacing: 0; }
h2 { font-size: 15px; margin: 0 0 8px; color: var(--muted); text-transform: uppercase; letter-spacing: .6px; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; overflow: hidden; }
.empty { padding: 20px; color: var(--muted); }
.dep { border-left: 5px solid var(--c); }
.dep + .dep { border-top: 1px solid var(--line); }
.dep .head { display: flex; flex-wrap: wrap; align-items: baseline; gap: 6px 12px; padding: 10px 14px 4px; }
.dep .what { font-weight: 600; font-size: 15px; }
.dep .meta { color: var(--muted); font-size: 13px; }
.dep .id { color: var(--muted); }
.dep .nodes { display: flex; flex-wrap: wrap; gap: 6px; list-style: none; margin: 0; padding: 4px 14px 12px; }
.badge { display: inline-block; min-width: 96px; text-align: center; padding: 2px 10px; border-radius: 999px;
  font-weight: 700; font-size: 12px; letter-spacing: .5px; text-transform: uppercase; color: var(--c); background: var(--cb);
  border: 1px solid var(--c); }
.chip { display: inline-flex; gap: 6px; align-items: baseline; padding: 3px 10px; border-radius: 6px;
  background: var(--cb); color: var(--text); border: 1px solid transparent; border-left: 4px solid var(--c); }
.chip b { color: var(--c); font-weight: 600; }
.chip .why { color: var(--muted); max-width: 420px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
details.out { padding: 0 14px 12px; }
details.out summary { cursor: pointer; color: var(--muted); }
details.out pre { margin: 6px 0 0; padding: 8px; background: var(--bg); border-radius: 6px; max-height: 240px; overflow: auto;
  white-space: pre-wrap; font-size: 12px; }
.s-succeeded { --c: var(--ok); --cb: var(--ok-bg); }
.s-failed, .s-rejected, .s-missing { --c: var(--bad); --cb: var(--bad-bg); }
.s-running, .s-received, .s-started { --c: var(--run); --cb: var(--run-bg); }
.s-skipped { --c: var(--skip); --cb: var(--skip-bg); }
.s-queued, .s-waiting, .s-offline { --c: var(--wait); --cb: var(--wait-bg); }
.s-online, .s-current { --c: var(--ok); --cb: var(--ok-bg); }
.s-behind { --c: var(--run); --cb: var(--run-bg); }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 8px 14px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { color: var(--muted); font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .5px; }
tr:last-child td { border-bottom: 0; }
td .tag { display: inline-block; padding: 0 8px; border-radius: 999px; font-weight: 600; font-size: 12px;
  color: var(--c); background: var(--cb); }
.group { display: inline-block; padding: 0 6px; margin-right: 4px; border: 1px solid var(--line); border-radius: 4px; font-size: 12px; }
`;

/** Runs in the browser: draws the page from its data and keeps it live. */
export const SCRIPT = `
(() => {
  const data = JSON.parse(document.getElementById("data").textContent);
  const live = document.getElementById("live");
  const conn = document.getElementById("conn");
  function draw() {
    live.textContent = "";
    for (const d of data.deployments) {
      const el = document.createElement("article");
      el.className = "dep s-" + d.state;
      el.dataset.deployment = d.id;
      el.dataset.state = d.state;
      el.textContent = d.id + " " + d.state;
      live.append(el);
    }
  }
  draw();
  const events = new EventSource("/api/events");
  events.onopen = () => { conn.textContent = "● live"; conn.className = "on"; };
  events.onerror = () => { conn.textContent = "○ reconnecting"; conn.className = "off"; };
  events.addEventListener("state", (e) => {
    const snap = JSON.parse(e.data);
    const i = data.deployments.findIndex((d) => d.id === snap.id);
    if (snap.full) { if (i < 0) data.deployments.unshift(snap); else data.deployments[i] = snap; }
    else if (i >= 0) data.deployments[i] = Object.assign(data.deployments[i], snap, { nodes: Object.assign(data.deployments[i].nodes, snap.nodes) });
    draw();
  });
})();
`;
