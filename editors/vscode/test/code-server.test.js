// The extension inside the real VS Code (code-server, in headless Chromium
// driven by playwright-core): what a person sees. Run by test/code-server.sh,
// which packages the .vsix and sets LOCODE_VSIX, CODE_SERVER, CHROMIUM,
// LOCODE_TEST_OUT and NODE_PATH (for playwright-core).

'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

for (const v of ['LOCODE_VSIX', 'CODE_SERVER', 'CHROMIUM', 'LOCODE_TEST_OUT']) {
    if (!process.env[v]) {
        throw new Error(`${v} is not set: run test/code-server.sh`);
    }
}
const { chromium } = require('playwright-core');

const OUT = process.env.LOCODE_TEST_OUT;
const STEP = 120_000; // ms for one step that may wait on the model

const ADD = 'def add(a, b):\n    \n\n\nprint(add(1, 2))\n';
const WORDS = 'def greet(name):\n    \n';

/** A file where the model writes a docstring, then a return (as in tests/e2e.rs). */
function earlySource() {
    let text = 'import math\n\n\n';
    for (let i = 0; i < 40; i++) {
        text += `def scale_${i}(values, factor):\n    """Multiply every value by factor and add ${i}."""\n    return [v * factor + ${i} for v in values]\n\n\n`;
    }
    text += 'def distance(x1, y1, x2, y2):\n    \n\n\nprint(distance(0, 0, 3, 4))\n';
    const line = text.split('\n').findIndex((l) => l.startsWith('def distance')) + 2; // 1-based line of the body
    return { text, line };
}

function sleep(ms) {
    return new Promise((r) => setTimeout(r, ms));
}

function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
        s.on('error', reject);
    });
}

async function waitFor(what, fn, timeout = STEP, every = 200) {
    const deadline = Date.now() + timeout;
    let last;
    for (;;) {
        last = await fn();
        if (last) {
            return last;
        }
        if (Date.now() > deadline) {
            throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
        }
        await sleep(every);
    }
}

let tmp;
let ws;
let userData;
let server;
let serverLog = '';
let browser;
let page;

/** Ends code-server's process group (code-server, the extension host, locode). */
function stopServer(signal = 'SIGKILL') {
    try {
        process.kill(-server.pid, signal);
    } catch {
        // already gone
    }
}

/** The ghost text shown in the active editor, line by line ('' when none). */
async function ghostText() {
    return page.evaluate(() => {
        const editor = document.querySelector('.editor-group-container.active .monaco-editor');
        if (!editor) {
            return '';
        }
        // The inline part on the cursor's line, then the lines below it: a
        // view zone that VS Code 1.100 fills with `.suggest-preview-text`.
        const inline = [...editor.querySelectorAll('.view-lines .ghost-text-decoration, .view-lines .ghost-text-decoration-preview')]
            .map((e) => e.textContent)
            .join('');
        const below = [...editor.querySelectorAll('.view-zones .suggest-preview-text .view-line')].map((e) => e.textContent);
        return [inline, ...below].join('\n').replace(/\u00a0/g, ' ').replace(/\n+$/, '');
    });
}

async function command(title) {
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await input.fill(`>${title}`);
    await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor({ timeout: 10_000 });
    await page.keyboard.press('Enter');
}

/** Opens a workspace file from the Explorer and puts the cursor at line:column (1-based). */
async function openAt(file, line, column) {
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: file }).first().dblclick();
    await page.locator(`.tab[aria-label^="${file}"]`).first().waitFor({ timeout: 10_000 });
    await page.locator('.editor-group-container.active .monaco-editor .view-lines').waitFor();
    await page.keyboard.press('Control+G');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await input.fill(`:${line}:${column}`); // Go to Line: the `:` prefix
    await page.locator('.quick-input-list .monaco-list-row', { hasText: `Go to line ${line}` }).first().waitFor({ timeout: 10_000 });
    await page.keyboard.press('Enter');
    await input.waitFor({ state: 'hidden' });
    await sleep(300);
}

async function save() {
    await page.keyboard.press('Control+S');
    await sleep(500);
}

function read(file) {
    return fs.readFileSync(path.join(ws, file), 'utf8');
}

function writeUserSettings(extra) {
    const settings = {
        'workbench.startupEditor': 'none',
        'workbench.tips.enabled': false,
        'workbench.enableExperiments': false,
        'security.workspace.trust.enabled': false,
        'telemetry.telemetryLevel': 'off',
        'extensions.autoCheckUpdates': false,
        'extensions.autoUpdate': false,
        'files.autoSave': 'off',
        // Ghost text only, as a person with the suggest list turned off
        // sees it: no word-based list in front of it.
        'editor.quickSuggestions': { other: 'off', comments: 'off', strings: 'off' },
        'editor.suggestOnTriggerCharacters': false,
        'editor.wordBasedSuggestions': 'off',
        'editor.inlineSuggest.enabled': true,
        // What is typed is what the document holds (no closing bracket added).
        'editor.autoClosingBrackets': 'never',
        'editor.autoClosingQuotes': 'never',
        'locode.threads': Math.max(1, Math.min(4, os.cpus().length)),
        // With params and results: the initialize answer is in the trace.
        'locode.trace.server': 'verbose',
        ...extra,
    };
    fs.writeFileSync(path.join(userData, 'User', 'settings.json'), JSON.stringify(settings, null, 2));
}

/** The LSP traffic the extension logged (`locode.trace.server`), from the output channel's log files. */
function traceLog() {
    const logs = path.join(userData, 'logs');
    const found = [];
    const walk = (d) => {
        for (const e of fs.readdirSync(d, { withFileTypes: true })) {
            const p = path.join(d, e.name);
            if (e.isDirectory()) {
                walk(p);
            } else if (/locode/i.test(e.name) && e.name.endsWith('.log')) {
                found.push(fs.readFileSync(p, 'utf8'));
            }
        }
    };
    if (fs.existsSync(logs)) {
        walk(logs);
    }
    return found.join('\n');
}

/**
 * A check: on a failure, a screenshot of the page and what the editor showed
 * go to the output folder before the error is reported.
 */
function check(name, options, fn) {
    it(name, options, async () => {
        try {
            await fn();
        } catch (e) {
            const slug = name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').slice(0, 60);
            const shot = path.join(OUT, `FAILED-${slug}.png`);
            await page?.screenshot({ path: shot }).catch(() => {});
            const ghost = page ? await ghostText().catch(() => '?') : '?';
            console.error(`FAILED: ${name}\n  ${e.message}\n  ghost text then: ${JSON.stringify(ghost)}\n  screenshot: ${shot}`);
            throw e;
        }
    });
}

describe('locode in code-server', { timeout: 20 * STEP }, () => {
    before(async () => {
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'locode-code-server-'));
        ws = path.join(tmp, 'workspace');
        userData = path.join(tmp, 'user-data');
        const extensions = path.join(tmp, 'extensions');
        fs.mkdirSync(ws);
        fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
        fs.writeFileSync(path.join(ws, 'add.py'), ADD);
        fs.writeFileSync(path.join(ws, 'greet.py'), WORDS);
        fs.writeFileSync(path.join(ws, 'early.py'), earlySource().text);
        fs.writeFileSync(path.join(ws, 'circle.py'), 'import math\n\n\ndef circle_area(radius):\n    return math.pi * radius ** 2\n');
        writeUserSettings({ 'locode.earlyAnswerMs': 1 });
        const common = ['--user-data-dir', userData, '--extensions-dir', extensions];
        execFileSync(process.env.CODE_SERVER, [...common, '--install-extension', process.env.LOCODE_VSIX], { stdio: 'inherit' });
        const installed = fs.readdirSync(extensions).filter((d) => d.startsWith('locode.locode-'));
        assert.equal(installed.length, 1, `the .vsix is not installed: ${fs.readdirSync(extensions)}`);
        assert.ok(
            fs.existsSync(path.join(extensions, installed[0], 'server', 'locode')),
            'the platform package has no bundled server/locode',
        );
        const port = await freePort();
        server = spawn(
            process.env.CODE_SERVER,
            [
                ...common,
                '--auth',
                'none',
                '--bind-addr',
                `127.0.0.1:${port}`,
                '--disable-telemetry',
                '--disable-update-check',
                '--disable-workspace-trust',
                '--disable-getting-started-override',
                '--ignore-last-opened',
                ws,
            ],
            {
                // Its own process group, so that it and everything it started
                // (the extension host, the locode server) end together.
                detached: true,
                stdio: ['ignore', 'pipe', 'pipe'],
                // No traffic beyond loopback: the extension gallery is a closed local port.
                env: { ...process.env, EXTENSIONS_GALLERY: JSON.stringify({ serviceUrl: 'http://127.0.0.1:9/gallery', itemUrl: 'http://127.0.0.1:9/item' }) },
            },
        );
        process.on('exit', () => stopServer());
        const log = (d) => {
            serverLog += d.toString();
        };
        server.stdout.on('data', log);
        server.stderr.on('data', log);
        await waitFor('code-server to listen', () => /HTTP server listening/.test(serverLog), 60_000);
        // A fresh profile, and nothing the browser would fetch by itself
        // (this machine may have no network at all).
        browser = await chromium.launchPersistentContext(path.join(tmp, 'chromium'), {
            executablePath: process.env.CHROMIUM,
            headless: true,
            viewport: { width: 1400, height: 900 },
            args: [
                '--headless',
                '--no-sandbox',
                '--disable-gpu',
                '--disable-quic',
                '--no-first-run',
                '--disable-background-networking',
                '--disable-component-update',
                '--disable-sync',
            ],
        });
        page = browser.pages()[0] ?? (await browser.newPage());
        await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(ws)}`);
        await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
        await page.locator('.explorer-folders-view, .explorer-viewlet').first().waitFor({ timeout: 60_000 });
    });

    after(async () => {
        if (page) {
            await page.screenshot({ path: path.join(OUT, 'last.png') }).catch(() => {});
        }
        await browser?.close().catch(() => {});
        if (server && server.exitCode === null) {
            const exited = new Promise((r) => server.once('exit', r));
            stopServer('SIGTERM');
            await Promise.race([exited, sleep(5000)]);
            stopServer('SIGKILL');
        }
        fs.writeFileSync(path.join(OUT, 'code-server.log'), serverLog);
        fs.writeFileSync(path.join(OUT, 'lsp-trace.log'), userData ? traceLog() : '');
        if (tmp) {
            fs.rmSync(tmp, { recursive: true, force: true });
        }
    });

    check('the status bar shows the model ready once a Python file is open', { timeout: STEP }, async () => {
        await openAt('add.py', 2, 5);
        const item = page.locator('.part.statusbar [aria-label^="locode: model ready"]');
        await item.first().waitFor({ timeout: STEP });
        const label = await item.first().getAttribute('aria-label');
        assert.match(label, /qwen2\.5-coder/i, label);
    });

    check('ghost text appears while typing; Tab accepts it into the document', { timeout: STEP }, async () => {
        await page.keyboard.type('return a + ', { delay: 100 });
        const ghost = await waitFor('ghost text after `return a + `', ghostText);
        assert.match(ghost, /\bb\b/, `ghost text ${JSON.stringify(ghost)}`);
        await page.screenshot({ path: path.join(OUT, 'ghost-text.png') });
        await page.keyboard.press('Tab');
        await waitFor('the ghost text to go', async () => (await ghostText()) === '', 5000);
        await save();
        const line = read('add.py').split('\n')[1];
        assert.equal(line, `    return a + ${ghost.split('\n')[0]}`, 'the accepted suggestion is in the document');
    });

    check('Ctrl+Right accepts one word of the ghost text', { timeout: STEP }, async () => {
        await openAt('greet.py', 2, 5);
        await page.keyboard.type('print(', { delay: 100 });
        const ghost = await waitFor('ghost text after `print(`', ghostText);
        const firstLine = ghost.split('\n')[0];
        await page.keyboard.press('Control+ArrowRight');
        await sleep(300);
        await save();
        const accepted = read('greet.py').split('\n')[1].slice('    print('.length);
        // The next word by VS Code's rule (a leading blank counts as one).
        assert.ok(
            accepted.length > 0 && accepted.length < firstLine.length && firstLine.startsWith(accepted),
            `one word of ${JSON.stringify(ghost)} accepted, got ${JSON.stringify(accepted)}`,
        );
        await page.keyboard.press('Escape');
    });

    check('an early answer grows into the whole answer without a keystroke', { timeout: 2 * STEP }, async () => {
        const { line } = earlySource();
        await openAt('early.py', line, 5);
        // Asked for at the empty body (Alt+\ in a desktop VS Code; the
        // palette here, where the browser keeps that key).
        const t0 = Date.now();
        const seen = []; // each ghost text shown, with when
        const watch = async () => {
            const g = await ghostText();
            if (seen.length === 0 || seen[seen.length - 1].text !== g) {
                seen.push({ ms: Date.now() - t0, text: g });
            }
            return g;
        };
        const timeline = () => seen.map((s) => `at ${s.ms} ms:\n${s.text}\n`).join('\n');
        await command('Trigger Inline Suggestion');
        let first;
        let whole;
        try {
            first = await waitFor('the early answer', watch);
            // Then no key is pressed: the rest must show by itself.
            whole = await waitFor('the whole answer', async () => {
                const g = await watch();
                // (Read again while VS Code is still drawing: the first line
                // and the lines below it are drawn apart.)
                return g.split('\n').length > first.split('\n').length && g.startsWith(first.split('\n')[0]) ? g : '';
            }, 60_000);
            await page.screenshot({ path: path.join(OUT, 'early-answer.png') });
        } finally {
            fs.writeFileSync(path.join(OUT, 'early-answer.txt'), `ghost text shown, with no key pressed after the trigger:\n\n${timeline()}`);
        }
        assert.ok(whole.startsWith(first.split('\n')[0]), `${JSON.stringify(first)} then ${JSON.stringify(whole)}`);
        const trace = traceLog();
        assert.match(trace, /locode\/suggestionReady/, 'the server sent locode/suggestionReady');
        await page.keyboard.press('Escape');
    });

    check('only ghost text: no textDocument/completion request, no completion provider', { timeout: STEP }, async () => {
        const trace = traceLog();
        assert.match(trace, /textDocument\/inlineCompletion/, 'the trace has the ghost-text requests');
        assert.doesNotMatch(trace, /Sending request 'textDocument\/completion/, 'a completion-item request was sent');
        assert.match(trace, /"inlineCompletionProvider"/, 'the trace has the initialize answer');
        assert.doesNotMatch(trace, /"completionProvider"/, 'the server offered completion items to VS Code');
    });

    check('Explain shows one view', { timeout: STEP }, async () => {
        await openAt('circle.py', 4, 1);
        await page.keyboard.press('Shift+ArrowDown');
        await page.keyboard.press('Shift+End');
        const tabsBefore = await page.locator('.tabs-container .tab').count();
        await command('locode: Explain Selection');
        const panel = page.locator('.tab', { hasText: 'locode: Explanation' });
        await panel.first().waitFor({ timeout: STEP });
        await sleep(2000); // anything else the command opens would be there by now
        const tabs = await page.locator('.tabs-container .tab').allInnerTexts();
        await page.screenshot({ path: path.join(OUT, 'explain.png') });
        assert.equal(tabs.length, tabsBefore + 1, `one new view: ${JSON.stringify(tabs)}`);
        assert.equal(tabs.filter((t) => /\.md\b/.test(t)).length, 0, `a markdown document opened too: ${JSON.stringify(tabs)}`);
        await page.keyboard.press('Control+W');
    });

    check('disabling locode for Python (status-bar menu) stops suggestions', { timeout: 2 * STEP }, async () => {
        await openAt('add.py', 3, 1);
        // On: a suggestion at a fresh line of the body.
        await page.keyboard.type('    retur', { delay: 100 });
        await waitFor('ghost text while on', ghostText);
        await page.keyboard.press('Escape');
        await page.locator('.part.statusbar [aria-label^="locode: model ready"]').first().click();
        const row = page.locator('.quick-input-list .monaco-list-row', { hasText: 'Disable for python' });
        await row.first().waitFor({ timeout: 10_000 });
        await row.first().click();
        await page.locator('.part.statusbar [aria-label*="off for python"]').first().waitFor({ timeout: 10_000 });
        const settings = fs.readFileSync(path.join(userData, 'User', 'settings.json'), 'utf8');
        assert.match(settings, /"\[python\]"\s*:\s*\{[^}]*"locode\.enabled"\s*:\s*false/, settings);
        // Off: typing on, and asking outright, gets nothing.
        await page.keyboard.type('n a', { delay: 100 });
        await command('Trigger Inline Suggestion');
        await sleep(5000);
        assert.equal(await ghostText(), '', 'ghost text while locode is off for Python');
    });
});
