// Drives the real locode binary (LOCODE_BIN) with the protocol layer the
// extension is built on (vscode-jsonrpc + vscode-languageserver-protocol;
// vscode-languageclient itself needs the `vscode` module, which only exists
// inside VS Code), sending the initializationOptions and configuration
// changes the extension sends (out/src/settings.js, built from
// src/settings.ts, with package.json's defaults).
//
//   npm run build && LOCODE_BIN=../../target/release/locode npm test

'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { StreamMessageReader, StreamMessageWriter } = require('vscode-jsonrpc/node');
const {
    createProtocolConnection,
    InitializeRequest,
    InitializedNotification,
    DidOpenTextDocumentNotification,
    DidChangeTextDocumentNotification,
    DidChangeConfigurationNotification,
    InlineCompletionRequest,
    InlineCompletionTriggerKind,
    WorkDoneProgressCreateRequest,
    ShowMessageNotification,
    MessageType,
    ShutdownRequest,
    ExitNotification,
    TextDocumentSyncKind,
} = require('vscode-languageserver-protocol/node');

const root = path.resolve(__dirname, '..', '..', '..');
const pkg = require('../package.json');
const settingsModule = path.join(__dirname, '..', 'out', 'src', 'settings.js');
if (!fs.existsSync(settingsModule)) {
    throw new Error(`${settingsModule} is missing: run \`npm run build\` first`);
}
const { serverSettings, configurationFromPackageJson, didChangeConfigurationParams, cloudEnabled } = require(settingsModule);

// LOCODE_BIN relative to the current directory; default: the repository's release build.
const BIN = process.env.LOCODE_BIN ? path.resolve(process.env.LOCODE_BIN) : path.join(root, 'target', 'release', 'locode');
const TIMEOUT = Number(process.env.LOCODE_TEST_TIMEOUT_MS || 120000);

const ADD = 'def add(a, b):\n    return \n\n\nprint(add(1, 2))\n';
const FIB = 'def fibonacci(n):\n    \n\n\nprint(fibonacci(10))\n';

let server;
let connection;
let stderr = '';
const messages = []; // window/showMessage from the server
let initResult;

/** What the extension sends for a user with these settings changed (package.json defaults otherwise). */
function settings(overrides = {}) {
    return serverSettings(configurationFromPackageJson(pkg, overrides));
}

function sleep(ms) {
    return new Promise((r) => setTimeout(r, ms));
}

async function inline(uri, line, character) {
    const result = await connection.sendRequest(InlineCompletionRequest.type, {
        textDocument: { uri },
        position: { line, character },
        context: { triggerKind: InlineCompletionTriggerKind.Automatic },
    });
    assert.ok(result !== null && result !== undefined, 'inline completion returned null');
    return Array.isArray(result) ? result : result.items;
}

function insertTextOf(item) {
    return typeof item.insertText === 'string' ? item.insertText : item.insertText.value;
}

describe('locode with the VS Code extension protocol layer', { timeout: 10 * TIMEOUT }, () => {
    before(async () => {
        assert.ok(fs.existsSync(BIN), `locode binary not found at ${BIN} (set LOCODE_BIN or cargo build --release)`);
        server = spawn(BIN, ['serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
        server.stderr.on('data', (d) => {
            stderr = (stderr + d.toString()).slice(-20000);
        });
        connection = createProtocolConnection(
            new StreamMessageReader(server.stdout),
            new StreamMessageWriter(server.stdin),
        );
        // What VS Code does with the server's progress and messages.
        connection.onRequest(WorkDoneProgressCreateRequest.type, () => null);
        connection.onNotification(ShowMessageNotification.type, (m) => messages.push(m));
        connection.onNotification(() => {});
        connection.listen();
    });

    after(async () => {
        if (connection) {
            try {
                await Promise.race([connection.sendRequest(ShutdownRequest.type), sleep(5000)]);
                await connection.sendNotification(ExitNotification.type);
            } catch {
                // the server is gone already
            }
            connection.dispose();
        }
        if (server && server.exitCode === null) {
            const exited = new Promise((r) => server.once('exit', r));
            await Promise.race([exited, sleep(5000)]);
            if (server.exitCode === null) {
                server.kill('SIGKILL');
            }
        }
    });

    it('initializes with the extension\'s initializationOptions', { timeout: TIMEOUT }, async () => {
        const initializationOptions = settings();
        // package.json's defaults, as the server's README table has them.
        assert.deepEqual(initializationOptions, {
            model: null,
            family: null,
            threads: null,
            contextSize: 5632,
            gpuLayers: null,
            slots: 4,
            batchSize: 512,
            enabled: true,
            maxTokens: 96,
            maxLines: 12,
            prefixLines: 256,
            suffixLines: 64,
            earlyAnswerMs: 400,
            cloud: {},
            completionEngine: {},
            // Ghost text only; explanations shown by the extension alone.
            completionItems: 'never',
            explainOutput: 'result',
        });
        initResult = await connection.sendRequest(InitializeRequest.type, {
            processId: process.pid,
            clientInfo: { name: 'Visual Studio Code', version: '1.82.0' },
            rootUri: null,
            workspaceFolders: null,
            initializationOptions,
            capabilities: {
                general: { positionEncodings: ['utf-16'] },
                experimental: { locode: { suggestionReady: true } },
                window: { workDoneProgress: true, showMessage: {} },
                workspace: { configuration: true, didChangeConfiguration: { dynamicRegistration: true } },
                textDocument: {
                    synchronization: { dynamicRegistration: true, didSave: true },
                    inlineCompletion: { dynamicRegistration: true },
                },
            },
        });
        await connection.sendNotification(InitializedNotification.type, {});
        const caps = initResult.capabilities;
        assert.ok(caps.inlineCompletionProvider, `no inlineCompletionProvider: ${JSON.stringify(caps)}`);
        // No completion items next to the ghost text (the suggest widget keeps the language's own).
        assert.equal(caps.completionProvider, undefined, `completionProvider offered: ${JSON.stringify(caps)}`);
        const sync = typeof caps.textDocumentSync === 'object' ? caps.textDocumentSync.change : caps.textDocumentSync;
        assert.equal(sync, TextDocumentSyncKind.Incremental);
    });

    it('loads the model (locode/status)', { timeout: TIMEOUT }, async () => {
        const deadline = Date.now() + TIMEOUT;
        let status;
        for (;;) {
            status = await connection.sendRequest('locode/status');
            if (status.state === 'ready') {
                break;
            }
            assert.notEqual(status.state, 'failed', `model failed to load: ${status.error}`);
            assert.ok(Date.now() < deadline, `model not ready after ${TIMEOUT} ms: ${JSON.stringify(status)}\n${stderr}`);
            await sleep(100);
        }
        assert.equal(typeof status.model.family, 'string');
        assert.deepEqual(messages, [], 'the server complained about the initializationOptions');
    });

    it('completes `return a + ` typed keystroke by keystroke (incremental changes)', { timeout: TIMEOUT }, async () => {
        const uri = 'file:///tmp/locode-vscode-test/add.py';
        await connection.sendNotification(DidOpenTextDocumentNotification.type, {
            textDocument: { uri, languageId: 'python', version: 1, text: ADD },
        });
        // VS Code sends one incremental change per keystroke.
        let version = 1;
        let col = '    return '.length;
        for (const ch of 'a + ') {
            version += 1;
            await connection.sendNotification(DidChangeTextDocumentNotification.type, {
                textDocument: { uri, version },
                contentChanges: [{ range: { start: { line: 1, character: col }, end: { line: 1, character: col } }, text: ch }],
            });
            col += 1;
        }
        const state = await connection.sendRequest('locode/documentState', { uri });
        assert.equal(state.text, ADD.replace('return \n', 'return a + \n'));
        assert.equal(state.version, version);
        const items = await inline(uri, 1, col);
        assert.ok(items.length >= 1, 'no inline completion items');
        const text = insertTextOf(items[0]);
        assert.ok(text.includes('b'), `insertText ${JSON.stringify(text)} does not contain b`);
        assert.deepEqual(items[0].range, { start: { line: 1, character: col }, end: { line: 1, character: col } });
        // What the status bar shows.
        const stats = await connection.sendRequest('locode/lastStats', { uri });
        assert.ok(stats && stats.generated_tokens >= 1, `lastStats: ${JSON.stringify(stats)}`);
    });

    it('workspace/didChangeConfiguration maxLines limits a block suggestion', { timeout: TIMEOUT }, async () => {
        const uri = 'file:///tmp/locode-vscode-test/fib.py';
        await connection.sendNotification(DidOpenTextDocumentNotification.type, {
            textDocument: { uri, languageId: 'python', version: 1, text: FIB },
        });
        const lines = (items) => insertTextOf(items[0]).replace(/\n+$/, '').split('\n').length;
        // Fewer tokens keep this quick on a small CPU; still several lines.
        // earlyAnswerMs 0: the whole block in one answer (no early first line).
        await connection.sendNotification(
            DidChangeConfigurationNotification.type,
            didChangeConfigurationParams(settings({ maxTokens: 32, earlyAnswerMs: 0 })),
        );
        const full = await inline(uri, 1, 4);
        assert.ok(full.length >= 1, 'no block suggestion with the default maxLines');
        const n = lines(full);
        assert.ok(n > 2, `the default block suggestion has only ${n} line(s), cannot show maxLines: ${JSON.stringify(full)}`);
        await connection.sendNotification(
            DidChangeConfigurationNotification.type,
            didChangeConfigurationParams(settings({ maxTokens: 32, maxLines: 2, earlyAnswerMs: 0 })),
        );
        const limited = await inline(uri, 1, 4);
        assert.ok(limited.length >= 1, 'no block suggestion with maxLines 2');
        assert.ok(lines(limited) <= 2, `maxLines 2 gave ${lines(limited)} lines: ${JSON.stringify(insertTextOf(limited[0]))}`);
        assert.deepEqual(messages, []);
    });

    it('enabled: false stops completions, enabled: true brings them back', { timeout: TIMEOUT }, async () => {
        const uri = 'file:///tmp/locode-vscode-test/add.py';
        const col = '    return a + '.length;
        await connection.sendNotification(
            DidChangeConfigurationNotification.type,
            didChangeConfigurationParams(settings({ maxLines: 2, enabled: false })),
        );
        assert.deepEqual(await inline(uri, 1, col), [], 'completions while disabled');
        await connection.sendNotification(
            DidChangeConfigurationNotification.type,
            didChangeConfigurationParams(settings({ maxLines: 2, enabled: true })),
        );
        const items = await inline(uri, 1, col);
        assert.ok(items.length >= 1, 'no completion after re-enabling');
        assert.ok(insertTextOf(items[0]).includes('b'), `after re-enabling: ${JSON.stringify(items)}`);
        assert.deepEqual(messages, []);
    });

    it('forwards the cloud and completionEngine settings, which the server accepts', { timeout: TIMEOUT }, async () => {
        const cloud = { route: 'ask', provider: 'anthropic', model: 'claude-test', endpoint: 'http://127.0.0.1:9/v1/messages' };
        const sent = settings({ cloud, completionEngine: { kind: 'embedded' } });
        assert.deepEqual(sent.cloud, cloud);
        assert.deepEqual(sent.completionEngine, { kind: 'embedded' });
        assert.equal(cloudEnabled(configurationFromPackageJson(pkg, { cloud })), true);
        assert.equal(cloudEnabled(configurationFromPackageJson(pkg)), false, 'cloud actions shown with cloud off');
        await connection.sendNotification(DidChangeConfigurationNotification.type, didChangeConfigurationParams(sent));
        // The server read them: its code actions now include the cloud ones.
        const uri = 'file:///tmp/locode-vscode-test/add.py';
        const actions = async () =>
            (
                await connection.sendRequest('textDocument/codeAction', {
                    textDocument: { uri },
                    range: { start: { line: 0, character: 0 }, end: { line: 1, character: 10 } },
                    context: { diagnostics: [] },
                })
            ).map((a) => a.title);
        const titles = await actions();
        assert.ok(titles.some((t) => /cloud/i.test(t)), `no cloud action with cloud.route ask: ${JSON.stringify(titles)}`);
        assert.deepEqual(messages, [], 'the server rejected the forwarded settings');
        await connection.sendNotification(DidChangeConfigurationNotification.type, didChangeConfigurationParams(settings()));
        const off = await actions();
        assert.ok(!off.some((t) => /cloud/i.test(t)) && off.length > 0, `cloud actions with cloud off: ${JSON.stringify(off)}`);
    });
});
