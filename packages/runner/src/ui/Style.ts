/**
 * The stylesheet of the dashboard and the report, inlined in every page (the report must work
 * from disk with nothing else). Stage states are colours keyed on `data-state`, so the live page
 * recolours a stage by changing one attribute.
 *
 * @since 0.1.0
 */

/** The CSS text. */
export const css = `
:root { --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --bg: #ffffff; --panel: #f6f8fa;
  --pending: #eaeef2; --running: #fff1c2; --running-edge: #d4a72c; --succeeded: #d1f4dc; --succeeded-edge: #2da44e;
  --failed: #ffd8d3; --failed-edge: #cf222e; --skipped: #f6f8fa; --skipped-edge: #8c959f; --interrupted: #eddeff; --interrupted-edge: #8250df; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 12px 20px; border-bottom: 1px solid var(--line); background: var(--panel); display: flex; gap: 14px; align-items: baseline; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; }
header a { color: var(--muted); text-decoration: none; }
main { padding: 8px 20px 40px; }
section { margin: 18px 0; }
h2 { font-size: 15px; margin: 0 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 14px; margin: 0; display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
.note, .meta { color: var(--muted); font-size: 12px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; }
th, td { text-align: left; padding: 3px 10px 3px 0; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; }
code, pre { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 8px; overflow-x: auto; margin: 6px 0; max-height: 320px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; border: 1px solid var(--line); background: var(--pending); }
[data-state="running"] > .badge, .badge[data-state="running"], .badge[data-status="running"] { background: var(--running); border-color: var(--running-edge); }
.badge[data-state="succeeded"], .badge[data-status="succeeded"] { background: var(--succeeded); border-color: var(--succeeded-edge); }
.badge[data-state="failed"], .badge[data-status="failed"] { background: var(--failed); border-color: var(--failed-edge); }
.badge[data-state="skipped"] { background: var(--skipped); border-color: var(--skipped-edge); border-style: dashed; }
.badge[data-state="interrupted"], .badge[data-status="interrupted"] { background: var(--interrupted); border-color: var(--interrupted-edge); }
.badge[data-status="crashed"] { background: var(--failed); border-color: var(--failed-edge); border-style: dashed; }
.reuse { margin-left: 6px; font-size: 12px; color: var(--muted); }
.reuse .badge[data-reuse="cached"] { background: var(--panel); border-color: var(--succeeded-edge); }
svg.dag .node .reuse { fill: var(--muted); font-size: 10px; }
svg text { font: 12px system-ui, sans-serif; fill: var(--fg); }
svg.dag .edge { fill: none; stroke: #8c959f; stroke-width: 1.5; }
svg.dag marker path { fill: #8c959f; }
svg.dag .node .box { fill: var(--pending); stroke: #afb8c1; stroke-width: 1.5; }
svg.dag .node .id { font-weight: 600; }
svg.dag .node .kind { fill: var(--muted); font-size: 11px; }
svg.dag .node .bar { fill: var(--running-edge); }
svg.dag .node[data-state="succeeded"] .bar { fill: var(--succeeded-edge); }
svg.dag .node[data-state="running"] .box { fill: var(--running); stroke: var(--running-edge); animation: pulse 1.2s ease-in-out infinite; }
svg.dag .node[data-state="succeeded"] .box { fill: var(--succeeded); stroke: var(--succeeded-edge); }
svg.dag .node[data-state="failed"] .box { fill: var(--failed); stroke: var(--failed-edge); }
svg.dag .node[data-state="skipped"] .box { fill: var(--skipped); stroke: var(--skipped-edge); stroke-dasharray: 5 3; }
svg.dag .node[data-state="interrupted"] .box { fill: var(--interrupted); stroke: var(--interrupted-edge); }
svg.dag .node.selected .box { stroke-width: 3; }
@keyframes pulse { 50% { stroke-opacity: 0.35; } }
svg.timeline .tick { stroke: #eaeef2; }
svg.timeline .tick-label, svg.timeline .dur, svg.timeline .hidden-note { fill: var(--muted); font-size: 11px; }
svg.timeline .bar-run { fill: #8c959f; }
svg.timeline .bar-span { fill: #a5c8ec; }
svg.timeline .row-span .label { fill: var(--muted); font-size: 11px; }
svg.timeline .bar-stage { fill: var(--succeeded-edge); }
svg.timeline .row-stage[data-state="running"] .bar { fill: var(--running-edge); }
svg.timeline .row-stage[data-state="failed"] .bar, svg.timeline .row-span[data-state="failed"] .bar { fill: var(--failed-edge); }
svg.timeline .row-stage[data-state="interrupted"] .bar { fill: var(--interrupted-edge); }
svg.chart .grid { stroke: #eaeef2; }
svg.chart .frame { stroke: #afb8c1; }
svg.chart .axis-label, svg.chart .legend { font-size: 11px; fill: var(--muted); }
svg.chart .chart-title { font-weight: 600; }
svg.chart .bar-value { font-size: 11px; fill: var(--muted); }
table.lm-groups td, table.lm-compare td { font-variant-numeric: tabular-nums; text-align: right; padding-right: 14px; }
table.lm-groups tr.all th, table.lm-groups tr.all td { font-weight: 600; border-top: 2px solid var(--line); }
table.lm-compare td.best { font-weight: 700; background: var(--succeeded); }
.samples .sample { margin: 4px 0; white-space: pre-wrap; font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.samples .prompt { font-weight: 700; }
.samples .continuation { color: var(--muted); }
.charts { display: flex; flex-wrap: wrap; gap: 12px; margin: 8px 0; }
.charts > table, .charts > details { align-self: flex-start; }
.diagnostics h4 { margin: 10px 0 2px; font-size: 13px; }
.diagnostics-headline { margin: 2px 0 6px; font-size: 12px; }
.diagnostics-table td { font-variant-numeric: tabular-nums; }
.stage { border: 1px solid var(--line); border-left: 5px solid #afb8c1; border-radius: 6px; padding: 10px 12px; margin: 10px 0; }
.stage[data-state="running"] { border-left-color: var(--running-edge); }
.stage[data-state="succeeded"] { border-left-color: var(--succeeded-edge); }
.stage[data-state="failed"] { border-left-color: var(--failed-edge); }
.stage[data-state="skipped"] { border-left-color: var(--skipped-edge); border-left-style: dashed; }
.stage[data-state="interrupted"] { border-left-color: var(--interrupted-edge); }
.stage.selected, .stage:target { box-shadow: 0 0 0 2px #54aeff; }
.stage .kind { color: var(--muted); font-weight: 400; }
.progress { display: flex; gap: 10px; align-items: center; font-size: 12px; color: var(--muted); margin: 6px 0; }
.progress[hidden] { display: none; }
.progress .track { width: 220px; height: 6px; background: var(--pending); border-radius: 3px; overflow: hidden; }
.progress .fill { height: 100%; background: var(--running-edge); }
.stage[data-state="succeeded"] .progress .fill { background: var(--succeeded-edge); }
.error { background: var(--failed); border-color: var(--failed-edge); white-space: pre-wrap; }
.legend-states { display: flex; gap: 8px; flex-wrap: wrap; margin-top: 6px; }
.runs td, .runs th { padding-right: 18px; }
details > summary { cursor: pointer; color: var(--muted); font-size: 12px; margin: 4px 0; }
.artifacts img { max-width: 100%; border: 1px solid var(--line); border-radius: 4px; }
`
