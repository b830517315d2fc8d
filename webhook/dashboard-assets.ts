/**
 * The dashboard's inline style sheet and script: no build step, no CDN, so
 * the page works offline. The script is the source text of the browser
 * functions in webhook/dashboard-*.ts and of shared/format.ts (so both
 * screens word things the same, from one source, not from a copy).
 * This works because every shipped function is a plain `function`
 * declaration calling only shipped functions; tests/dashboard.test.ts checks
 * that the browser modules keep to it. The style works from 390 px wide up,
 * in light and dark.
 */
import * as format from "../shared/format.ts";
import * as cards from "./dashboard-cards.ts";
import * as dom from "./dashboard-dom.ts";
import * as draw from "./dashboard-draw.ts";
import * as fleet from "./dashboard-fleet.ts";
import * as live from "./dashboard-live.ts";
import * as merge from "./dashboard-merge.ts";

export const STYLE = `
:root {
  color-scheme: light dark;
  --bg: #f6f8fa; --panel: #fff; --text: #1f2328; --muted: #59636e; --line: #d1d9e0;
  --ok: #1a7f37; --ok-bg: #dafbe1; --bad: #cf222e; --bad-bg: #ffebe9; --run: #9a6700; --run-bg: #fff8c5;
  --warn: #bc4c00; --warn-bg: #fff1e5; --skip: #0969da; --skip-bg: #ddf4ff; --wait: #59636e; --wait-bg: #eff2f5;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --panel: #151b23; --text: #e6edf3; --muted: #9198a1; --line: #3d444d;
    --ok: #3fb950; --ok-bg: #12261e; --bad: #f85149; --bad-bg: #2d1416; --run: #d29922; --run-bg: #2e2410;
    --warn: #db6d28; --warn-bg: #2f1a0e; --skip: #4493f8; --skip-bg: #121d2f; --wait: #9198a1; --wait-bg: #21262d;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); overflow-wrap: anywhere;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; }
code, .mono, pre { font-family: ui-monospace, SFMono-Regular, "DejaVu Sans Mono", Menlo, monospace; font-size: 12.5px; }
header.top { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 16px; padding: 10px 24px; background: var(--panel);
  border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 1; }
header.top h1 { font-size: 18px; margin: 0; }
header.top .fleet { color: var(--muted); }
header.top .summary { margin-left: auto; }
#conn { font-weight: 600; } #conn.on { color: var(--ok); } #conn.off { color: var(--bad); }
main { max-width: 1280px; margin: 0 auto; padding: 16px 24px 40px; display: grid; gap: 22px; }
main > * { min-width: 0; }
section { display: grid; gap: 8px; min-width: 0; }
a { color: inherit; text-decoration-color: var(--muted); }
h2 { font-size: 14px; margin: 0; color: var(--muted); text-transform: uppercase; letter-spacing: .6px; }
.t-ok { --c: var(--ok); --cb: var(--ok-bg); } .t-bad { --c: var(--bad); --cb: var(--bad-bg); }
.t-run { --c: var(--run); --cb: var(--run-bg); } .t-warn { --c: var(--warn); --cb: var(--warn-bg); }
.t-skip { --c: var(--skip); --cb: var(--skip-bg); } .t-wait { --c: var(--wait); --cb: var(--wait-bg); }
.stats { display: flex; flex-wrap: wrap; gap: 10px; }
.stat { flex: 1 1 150px; background: var(--panel); border: 1px solid var(--line); border-left: 5px solid var(--c); border-radius: 10px; padding: 6px 14px; }
.stat .v { font-size: 21px; font-weight: 700; color: var(--c); }
.stat .l { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .5px; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; overflow: hidden; min-width: 0; }
.empty, .pad { padding: 16px; color: var(--muted); margin: 0; }
.meta, .why { color: var(--muted); }
.tag, .word { font-weight: 600; color: var(--c); white-space: nowrap; }
.tag { display: inline-block; padding: 0 8px; border-radius: 999px; font-size: 12px; background: var(--cb); }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-weight: 700; font-size: 12px; letter-spacing: .5px;
  text-transform: uppercase; color: var(--c); background: var(--cb); border: 1px solid var(--c); white-space: nowrap; }
.group { display: inline-block; padding: 0 6px; margin: 0 4px 2px 0; border: 1px solid var(--line); border-radius: 4px; font-size: 12px; }
table.fleet { width: 100%; border-collapse: collapse; }
.fleet th, .fleet td { text-align: left; padding: 7px 12px; border-bottom: 1px solid var(--line); vertical-align: top; }
.fleet th { color: var(--muted); font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .5px; white-space: nowrap; }
.fleet tr:last-child td { border-bottom: 0; }
.fleet td .why { display: block; font-size: 12px; }
.dep { border-left: 5px solid var(--c); padding: 10px 14px 12px; display: grid; gap: 6px; min-width: 0; }
.dep + .dep { border-top: 1px solid var(--line); }
.dep .head { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 12px; }
.dep .what { font-weight: 600; font-size: 15px; }
.dep .head .meta { flex-basis: 100%; font-size: 13px; }
.dep p { margin: 0; }
.dep .reason { color: var(--c); font-weight: 600; }
.wave-line { font-weight: 600; }
.dep .strategy { color: var(--muted); font-size: 13px; overflow-wrap: anywhere; }
.wave, .rollback { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 10px; }
.wave-name { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .5px; min-width: 64px; }
.nodes { display: flex; flex-wrap: wrap; gap: 6px; list-style: none; margin: 0; padding: 0; min-width: 0; flex-basis: 100%; }
.chip { display: inline-flex; flex-wrap: wrap; gap: 2px 8px; align-items: baseline; padding: 3px 10px; border-radius: 6px; max-width: 100%;
  background: var(--cb); border-left: 4px solid var(--c); }
.chip .n { font-weight: 600; }
.chip .why { flex-basis: 100%; font-size: 12.5px; }
.actions { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
.actions button { font: inherit; font-weight: 600; padding: 4px 14px; border-radius: 6px; cursor: pointer; border: 1px solid var(--c); }
.actions .approve { --c: var(--ok); background: var(--ok); color: var(--panel); }
.actions .abort { --c: var(--bad); background: var(--panel); color: var(--bad); }
.actions button:disabled { opacity: .5; cursor: default; }
.actions .note { color: var(--muted); }
.rejected { --c: var(--bad); color: var(--bad); }
.rejected ul, .rejections { margin: 4px 0 0; padding-left: 18px; }
.rejections { padding: 10px 14px 10px 32px; }
details.out summary { cursor: pointer; color: var(--muted); }
details.out pre { margin: 6px 0 0; padding: 8px; background: var(--bg); border-radius: 6px; max-height: 320px; overflow: auto;
  white-space: pre-wrap; overflow-wrap: anywhere; font-size: 12px; }
@media (max-width: 760px) {
  header.top, main { padding-left: 12px; padding-right: 12px; }
  .fleet thead { display: none; }
  .fleet, .fleet tbody, .fleet tr, .fleet td { display: block; width: 100%; }
  .fleet tr { padding: 8px 12px; border-bottom: 1px solid var(--line); display: grid; grid-template-columns: 1fr 1fr; gap: 2px 12px; }
  .fleet tr:last-child { border-bottom: 0; }
  .fleet td { padding: 0; border: 0; min-width: 0; }
  .fleet td[data-label="Node"], .fleet td[data-label="State"] { grid-column: 1 / -1; }
  .fleet td::before { content: attr(data-label) " "; color: var(--muted); font-size: 11px; text-transform: uppercase; letter-spacing: .4px; }
  .fleet td[data-label="Node"]::before { content: none; }
}
`;

/** Every shipped function's source, then the call that starts the page. */
const shipped = [format, dom, cards, fleet, draw, live, merge]
  .flatMap((module) => Object.values(module))
  .filter((value): value is (...args: never[]) => unknown => typeof value === "function");

export const SCRIPT = `(() => {
"use strict";
${shipped.map(String).join("\n")}
${live.startDashboard.name}(JSON.parse(document.getElementById("data").textContent));
})();
`;
// Inline in a <script> element, the text must not close it (or open an HTML comment).
if (/<\/script|<!--/i.test(SCRIPT)) throw new Error("the dashboard script holds text that would end its <script> element");
