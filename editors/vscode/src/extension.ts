// locode for VS Code: starts `locode serve` (the binary bundled in the
// platform package, or `locode.serverPath`) with vscode-languageclient and
// gets ghost text through LSP inline completion (the client's proposed
// InlineCompletionItemFeature), plus explain / refactor commands, a status
// bar item with a menu (per-language enabling, snooze) and settings
// forwarded to the server.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as vscode from 'vscode';
import {
    WorkspaceEdit as ProtocolWorkspaceEdit,
    DidChangeConfigurationNotification,
    ExecuteCommandRequest,
    LanguageClient,
    LanguageClientOptions,
    RevealOutputChannelOn,
    ServerOptions,
    State,
} from 'vscode-languageclient/node';
import { cloudEnabled, didChangeConfigurationParams, LANGUAGES, serverSettings } from './settings';

const SECTION = 'locode';

/** Server commands (workspace/executeCommand). */
const CMD_EXPLAIN = 'locode.explain';
const CMD_REFACTOR = 'locode.refactor';
const CMD_REFACTOR_CLOUD = 'locode.refactorCloud';

let client: LanguageClient | undefined;
let output: vscode.OutputChannel;
let statusBar: StatusBar;
let explanationPanel: vscode.WebviewPanel | undefined;
let extensionPath = '';
/** Completions are snoozed until this time (ms since the epoch). */
let snoozedUntil = 0;
let snoozeTimer: NodeJS.Timeout | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
    extensionPath = context.extensionPath;
    output = vscode.window.createOutputChannel('locode');
    statusBar = new StatusBar();
    updateContextKeys();
    context.subscriptions.push(
        output,
        statusBar,
        vscode.commands.registerCommand('locode.explainSelection', explainSelection),
        vscode.commands.registerCommand('locode.refactorSelection', (uri?: vscode.Uri, range?: vscode.Range) =>
            refactorSelection(false, uri, range),
        ),
        vscode.commands.registerCommand('locode.refactorSelectionCloud', (uri?: vscode.Uri, range?: vscode.Range) =>
            refactorSelection(true, uri, range),
        ),
        vscode.commands.registerCommand('locode.toggle', toggle),
        vscode.commands.registerCommand('locode.menu', showMenu),
        vscode.commands.registerCommand('locode.snooze', (minutes?: number) => snooze(minutes)),
        vscode.commands.registerCommand('locode.resume', resume),
        vscode.window.onDidChangeActiveTextEditor(() => statusBar.update()),
        vscode.commands.registerCommand('locode.showStatus', () => output.show(true)),
        vscode.commands.registerCommand('locode.restart', restart),
        vscode.workspace.onDidChangeConfiguration(onConfigurationChanged),
        vscode.languages.registerCodeActionsProvider(
            documentSelector(),
            new LocodeCodeActions(),
            { providedCodeActionKinds: LocodeCodeActions.kinds },
        ),
        { dispose: () => void client?.stop() },
        { dispose: () => snoozeTimer && clearTimeout(snoozeTimer) },
    );
    await start();
}

/** The documents locode serves: its languages, saved or not. */
function documentSelector(): { scheme: string; language: string }[] {
    return LANGUAGES.flatMap((language) => [
        { scheme: 'file', language },
        { scheme: 'untitled', language },
    ]);
}

export async function deactivate(): Promise<void> {
    const c = client;
    client = undefined;
    if (c) {
        await c.stop();
    }
}

function configuration(): vscode.WorkspaceConfiguration {
    return vscode.workspace.getConfiguration(SECTION);
}

/** The binary a platform package bundles (as rust-analyzer's does). */
function bundledServer(): string | undefined {
    const exe = path.join(extensionPath, 'server', process.platform === 'win32' ? 'locode.exe' : 'locode');
    return fs.existsSync(exe) ? exe : undefined;
}

/** `locode.serverPath`, else the bundled binary, else `locode` on `PATH`. */
function serverCommand(): string {
    const p = (configuration().get<string>('serverPath') ?? '').trim();
    if (p !== '') {
        return p.startsWith('~/') ? os.homedir() + p.slice(1) : p;
    }
    return bundledServer() ?? 'locode';
}

function snoozed(): boolean {
    return Date.now() < snoozedUntil;
}

/** `locode.enabled` for a document's language (the setting is language-overridable). */
function enabledFor(document: vscode.TextDocument | undefined): boolean {
    const scope = document ? { uri: document.uri, languageId: document.languageId } : undefined;
    return vscode.workspace.getConfiguration(SECTION, scope).get<boolean>('enabled', true);
}

/**
 * What the server is told of `enabled`: off while snoozed or when no
 * language locode serves has it on (then the server does no background work
 * either); otherwise on, and the extension asks for nothing in a language
 * where it is off.
 */
function serverEnabled(): boolean {
    if (snoozed()) {
        return false;
    }
    return LANGUAGES.some((languageId) => vscode.workspace.getConfiguration(SECTION, { languageId }).get<boolean>('enabled', true));
}

function currentServerSettings() {
    return serverSettings(configuration(), serverEnabled());
}

function updateContextKeys(): void {
    void vscode.commands.executeCommand('setContext', 'locode.cloudEnabled', cloudEnabled(configuration()));
    void vscode.commands.executeCommand('setContext', 'locode.snoozed', snoozed());
    void vscode.commands.executeCommand('setContext', 'locode.active', true);
}

function createClient(): LanguageClient {
    // stdio, without naming the transport: with TransportKind.stdio the
    // client appends `--stdio`, which `locode serve` refuses.
    const serverOptions: ServerOptions = {
        command: serverCommand(),
        args: ['serve'],
    };
    const clientOptions: LanguageClientOptions = {
        documentSelector: documentSelector(),
        initializationOptions: currentServerSettings(),
        outputChannel: output,
        revealOutputChannelOn: RevealOutputChannelOn.Never,
        middleware: {
            // Ghost text: time each request for the status bar.
            // Nothing is asked while snoozed or off for this language.
            provideInlineCompletionItems: async (document, position, context, token, next) => {
                if (snoozed() || !enabledFor(document)) {
                    return null;
                }
                const t0 = Date.now();
                const result = await next(document, position, context, token);
                const items = Array.isArray(result) ? result : result?.items;
                if (!token.isCancellationRequested && items && items.length > 0) {
                    statusBar.latency(Date.now() - t0, 'local');
                }
                return result;
            },
            // Server code actions run these commands too: show what they return.
            executeCommand: async (command, args, next) => {
                const result = await next(command, args);
                await handleCommandResult(command, result);
                return result;
            },
        },
    };
    const c = new LanguageClient('locode', 'locode', serverOptions, clientOptions);
    c.onNotification('locode/suggestionReady', (p: SuggestionReady) => void suggestionReady(p));
    // Tell the server that this client asks again on suggestionReady, so it
    // gets early answers (a client that does not gets whole answers).
    c.registerFeature({
        fillClientCapabilities: (caps) => {
            caps.experimental = { ...(caps.experimental as object | undefined), locode: { suggestionReady: true } };
        },
        initialize: () => undefined,
        getState: () => ({ kind: 'static' }),
        clear: () => undefined,
    });
    // vscode-languageclient 9 ships LSP 3.18 inline completion as a proposed feature.
    c.registerProposedFeatures();
    return c;
}

interface SuggestionReady {
    textDocument: { uri: string; version: number };
    position: { line: number; character: number };
}

/**
 * The rest of an early answer is ready: if the editor and cursor are still
 * where it was asked for, ask again; the server answers at once with the
 * whole suggestion.
 *
 * Hidden first: VS Code (1.100) does not ask again at the same position and
 * document version when its last request there was explicit (Alt+\, or
 * this trigger itself): it keeps that result, the first line. Hiding
 * drops what it keeps, so the trigger asks.
 */
async function suggestionReady(p: SuggestionReady): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (!editor || editor.document.uri.toString() !== p.textDocument.uri || editor.document.version !== p.textDocument.version) {
        return;
    }
    const at = editor.selection.active;
    if (!editor.selection.isEmpty || at.line !== p.position.line || at.character !== p.position.character) {
        return;
    }
    await vscode.commands.executeCommand('editor.action.inlineSuggest.hide');
    await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
}

async function start(): Promise<void> {
    client = createClient();
    statusBar.attach(client);
    try {
        await client.start();
    } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        output.appendLine(`locode: could not start ${serverCommand()} serve: ${msg}`);
        statusBar.failed(msg);
        void vscode.window
            .showErrorMessage(`locode: could not start \`${serverCommand()} serve\`: ${msg}`, 'Open Settings')
            .then((pick) => {
                if (pick) {
                    void vscode.commands.executeCommand('workbench.action.openSettings', 'locode.serverPath');
                }
            });
    }
}

async function restart(): Promise<void> {
    const old = client;
    client = undefined;
    if (old) {
        try {
            await old.stop();
        } catch {
            // already stopped
        }
    }
    await start();
}

function onConfigurationChanged(e: vscode.ConfigurationChangeEvent): void {
    if (!e.affectsConfiguration(SECTION)) {
        return;
    }
    if (e.affectsConfiguration(`${SECTION}.serverPath`)) {
        void restart();
        return;
    }
    updateContextKeys();
    statusBar.update();
    sendSettings();
}

function sendSettings(): void {
    if (client?.state === State.Running) {
        void client.sendNotification(DidChangeConfigurationNotification.type, didChangeConfigurationParams(currentServerSettings()));
    }
}

/** Where a write of `locode.enabled` takes effect: the scope whose value wins now. */
function enabledTarget(languageId: string | undefined): { target: vscode.ConfigurationTarget; inLanguage: boolean } {
    const folder = vscode.window.activeTextEditor?.document.uri;
    const i = vscode.workspace.getConfiguration(SECTION, languageId ? { uri: folder, languageId } : folder).inspect<boolean>('enabled');
    const T = vscode.ConfigurationTarget;
    // Most specific first: a language's value wins over any plain one.
    const scopes: [unknown, vscode.ConfigurationTarget, boolean][] = [
        [i?.workspaceFolderLanguageValue, T.WorkspaceFolder, true],
        [i?.workspaceLanguageValue, T.Workspace, true],
        [i?.globalLanguageValue, T.Global, true],
        [i?.workspaceFolderValue, T.WorkspaceFolder, false],
        [i?.workspaceValue, T.Workspace, false],
        [i?.globalValue, T.Global, false],
    ];
    for (const [value, target, inLanguage] of scopes) {
        if (value !== undefined && (languageId || !inLanguage)) {
            return { target, inLanguage };
        }
    }
    return { target: T.Global, inLanguage: false };
}

/**
 * Sets `locode.enabled` for a language (or for all, without one) where it
 * takes effect: the scope that decides it now, so a workspace value is not
 * left to override the change; a new per-language value goes to the user
 * settings.
 */
async function setEnabled(enabled: boolean, languageId?: string): Promise<void> {
    let { target, inLanguage } = enabledTarget(languageId);
    if (languageId && !inLanguage) {
        // The plain value decides now; a language override at the same
        // level or above wins over it.
        inLanguage = true;
    }
    const scope = languageId ? { uri: vscode.window.activeTextEditor?.document.uri, languageId } : undefined;
    await vscode.workspace.getConfiguration(SECTION, scope).update('enabled', enabled, target, inLanguage);
}

/** Turns completions on or off for the active editor's language (all languages without one). */
async function toggle(): Promise<void> {
    const doc = vscode.window.activeTextEditor?.document;
    const languageId = doc && LANGUAGES.includes(doc.languageId as (typeof LANGUAGES)[number]) ? doc.languageId : undefined;
    const enabled = languageId ? enabledFor(doc) : configuration().get<boolean>('enabled', true);
    await setEnabled(!enabled, languageId);
    const where = languageId ? ` for ${languageId}` : '';
    void vscode.window.setStatusBarMessage(`locode: completions ${enabled ? 'off' : 'on'}${where}`, 2000);
}

async function snooze(minutes?: number): Promise<void> {
    if (minutes === undefined) {
        const pick = await vscode.window.showQuickPick(
            [5, 15, 30, 60, 120].map((m) => ({ label: m < 60 ? `${m} minutes` : `${m / 60} hour${m > 60 ? 's' : ''}`, minutes: m })),
            { title: 'locode: snooze completions for' },
        );
        if (!pick) {
            return;
        }
        minutes = pick.minutes;
    }
    snoozedUntil = Date.now() + minutes * 60_000;
    if (snoozeTimer) {
        clearTimeout(snoozeTimer);
    }
    snoozeTimer = setTimeout(resume, minutes * 60_000);
    void vscode.commands.executeCommand('editor.action.inlineSuggest.hide');
    updateContextKeys();
    statusBar.update();
    sendSettings();
}

function resume(): void {
    snoozedUntil = 0;
    if (snoozeTimer) {
        clearTimeout(snoozeTimer);
        snoozeTimer = undefined;
    }
    updateContextKeys();
    statusBar.update();
    sendSettings();
}

/** The status bar item's menu: on/off for this language or all, snooze, output, restart. */
async function showMenu(): Promise<void> {
    type Item = vscode.QuickPickItem & { run?: () => unknown };
    const doc = vscode.window.activeTextEditor?.document;
    const lang = doc && LANGUAGES.includes(doc.languageId as (typeof LANGUAGES)[number]) ? doc.languageId : undefined;
    const all = configuration().get<boolean>('enabled', true);
    const items: Item[] = [];
    if (snoozed()) {
        const left = Math.ceil((snoozedUntil - Date.now()) / 60_000);
        items.push({ label: '$(play) Resume completions', description: `snoozed, ${left} min left`, run: resume });
    } else {
        items.push(
            { label: '$(clock) Snooze for 5 minutes', run: () => snooze(5) },
            { label: '$(clock) Snooze for 30 minutes', run: () => snooze(30) },
            { label: '$(clock) Snooze for 1 hour', run: () => snooze(60) },
        );
    }
    items.push({ label: '', kind: vscode.QuickPickItemKind.Separator });
    if (lang) {
        const on = enabledFor(doc);
        items.push({
            label: on ? `$(circle-slash) Disable for ${lang}` : `$(check) Enable for ${lang}`,
            run: () => setEnabled(!on, lang),
        });
    }
    items.push(
        { label: all ? '$(circle-slash) Disable completions' : '$(check) Enable completions', run: () => setEnabled(!all) },
        { label: '', kind: vscode.QuickPickItemKind.Separator },
        { label: '$(output) Show output', run: () => output.show(true) },
        { label: '$(debug-restart) Restart server', run: restart },
    );
    const pick = await vscode.window.showQuickPick(items, { title: 'locode', placeHolder: statusBar.summary() });
    await pick?.run?.();
}

function runningClient(): LanguageClient | undefined {
    if (client?.state === State.Running) {
        return client;
    }
    void vscode.window.showWarningMessage('locode: the server is not running (see the locode output).');
    return undefined;
}

/** The document and range a command works on: its arguments, else the selection (or the current line). */
function target(uri?: vscode.Uri, range?: vscode.Range): { document: vscode.TextDocument; range: vscode.Range } | undefined {
    const editor = vscode.window.activeTextEditor;
    if (uri instanceof vscode.Uri && range instanceof vscode.Range) {
        const document = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
        if (document) {
            return { document, range };
        }
    }
    if (!editor) {
        void vscode.window.showInformationMessage('locode: open a file and select some code first.');
        return undefined;
    }
    const sel = editor.selection;
    return {
        document: editor.document,
        range: sel.isEmpty ? editor.document.lineAt(sel.active.line).range : new vscode.Range(sel.start, sel.end),
    };
}

async function execute(command: string, arg: object, title: string): Promise<unknown> {
    const c = runningClient();
    if (!c) {
        return undefined;
    }
    return vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title, cancellable: true },
        async (_progress, token) => {
            const t0 = Date.now();
            const result = await c.sendRequest(ExecuteCommandRequest.type, { command, arguments: [arg] }, token);
            statusBar.latency(Date.now() - t0, command === CMD_REFACTOR_CLOUD ? 'cloud' : 'local');
            return result;
        },
    );
}

async function explainSelection(uri?: vscode.Uri, range?: vscode.Range): Promise<void> {
    const t = target(uri, range);
    const c = t && runningClient();
    if (!t || !c) {
        return;
    }
    const arg = {
        uri: c.code2ProtocolConverter.asUri(t.document.uri),
        range: c.code2ProtocolConverter.asRange(t.range),
    };
    try {
        const result = await execute(CMD_EXPLAIN, arg, 'locode: explaining…');
        await handleCommandResult(CMD_EXPLAIN, result);
    } catch (e) {
        reportError('explain', e);
    }
}

async function refactorSelection(cloud: boolean, uri?: vscode.Uri, range?: vscode.Range): Promise<void> {
    if (cloud && !cloudEnabled(configuration())) {
        void vscode.window
            .showInformationMessage('locode: cloud escalation is off (`locode.cloud.route` is `never`).', 'Open Settings')
            .then((pick) => pick && vscode.commands.executeCommand('workbench.action.openSettings', 'locode.cloud'));
        return;
    }
    const t = target(uri, range);
    const c = t && runningClient();
    if (!t || !c) {
        return;
    }
    const instruction = await vscode.window.showInputBox({
        title: cloud ? 'locode: refactor with the cloud model' : 'locode: refactor',
        prompt: 'How should the selected code change?',
        placeHolder: 'e.g. use a list comprehension; add type hints; handle the empty case',
        ignoreFocusOut: true,
    });
    if (!instruction) {
        return;
    }
    const arg = {
        uri: c.code2ProtocolConverter.asUri(t.document.uri),
        range: c.code2ProtocolConverter.asRange(t.range),
        instruction,
    };
    const command = cloud ? CMD_REFACTOR_CLOUD : CMD_REFACTOR;
    try {
        const result = await execute(command, arg, cloud ? 'locode: refactoring (cloud)…' : 'locode: refactoring…');
        await handleCommandResult(command, result);
    } catch (e) {
        reportError('refactor', e);
    }
}

function reportError(what: string, e: unknown): void {
    if (e instanceof vscode.CancellationError) {
        return;
    }
    const msg = e instanceof Error ? e.message : String(e);
    void vscode.window.showErrorMessage(`locode ${what}: ${msg}`);
}

/**
 * What a server command returned: explain gives markdown (shown in a side
 * panel); refactor may return a WorkspaceEdit (applied here) or nothing (the
 * server applied its edit with workspace/applyEdit, which the client handles).
 */
async function handleCommandResult(command: string, result: unknown): Promise<void> {
    if (command === CMD_EXPLAIN) {
        const text = typeof result === 'string' ? result : (result as { value?: string } | null)?.value;
        if (text) {
            await showExplanation(text);
        } else if (result !== undefined) {
            void vscode.window.showInformationMessage('locode: no explanation.');
        }
        return;
    }
    if (command === CMD_REFACTOR || command === CMD_REFACTOR_CLOUD) {
        if (result && typeof result === 'object' && ('changes' in result || 'documentChanges' in result) && client) {
            const edit = await client.protocol2CodeConverter.asWorkspaceEdit(result as ProtocolWorkspaceEdit);
            if (!edit || !(await vscode.workspace.applyEdit(edit))) {
                void vscode.window.showErrorMessage('locode: the refactoring could not be applied.');
            }
        } else if (typeof result === 'string' && result.trim() !== '') {
            await showExplanation(result, 'locode: Refactoring');
        }
    }
}

function escapeHtml(s: string): string {
    return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

async function showExplanation(markdown: string, title = 'locode: Explanation'): Promise<void> {
    let body: string;
    try {
        // The built-in Markdown extension's renderer.
        body = (await vscode.commands.executeCommand<string>('markdown.api.render', markdown)) ?? '';
    } catch {
        body = '';
    }
    if (!body) {
        body = `<pre>${escapeHtml(markdown)}</pre>`;
    }
    if (!explanationPanel) {
        explanationPanel = vscode.window.createWebviewPanel(
            'locode.explanation',
            title,
            { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
            { enableFindWidget: true, enableScripts: false },
        );
        explanationPanel.onDidDispose(() => (explanationPanel = undefined));
    }
    explanationPanel.title = title;
    explanationPanel.webview.html = `<!DOCTYPE html>
<html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline' ${explanationPanel.webview.cspSource}; img-src ${explanationPanel.webview.cspSource} https: data:;">
<style>
body { font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); color: var(--vscode-foreground); padding: 0 1em; line-height: 1.5; }
pre, code { font-family: var(--vscode-editor-font-family); font-size: var(--vscode-editor-font-size); }
pre { background: var(--vscode-textCodeBlock-background); padding: .6em; overflow-x: auto; }
</style></head><body>${body}</body></html>`;
    explanationPanel.reveal(vscode.ViewColumn.Beside, true);
}

/** Lightbulb actions on a selection, unless the server offers its own code actions. */
class LocodeCodeActions implements vscode.CodeActionProvider {
    static readonly kinds = [vscode.CodeActionKind.RefactorRewrite.append('locode'), vscode.CodeActionKind.Empty];

    provideCodeActions(document: vscode.TextDocument, range: vscode.Range | vscode.Selection): vscode.CodeAction[] {
        if (range.isEmpty || client?.state !== State.Running) {
            return [];
        }
        if (client.initializeResult?.capabilities.codeActionProvider) {
            return []; // the server's explain/refactor actions come through the client
        }
        const explain = new vscode.CodeAction('Explain with locode', vscode.CodeActionKind.Empty);
        explain.command = { command: 'locode.explainSelection', title: 'Explain', arguments: [document.uri, range] };
        const kind = vscode.CodeActionKind.RefactorRewrite.append('locode');
        const refactor = new vscode.CodeAction('Refactor with locode…', kind);
        refactor.command = { command: 'locode.refactorSelection', title: 'Refactor', arguments: [document.uri, range] };
        if (!cloudEnabled(configuration())) {
            return [explain, refactor]; // cloud escalation is off: nothing to offer
        }
        const cloud = new vscode.CodeAction('Refactor with cloud model…', kind);
        cloud.command = { command: 'locode.refactorSelectionCloud', title: 'Refactor (cloud)', arguments: [document.uri, range] };
        return [explain, refactor, cloud];
    }
}

interface ModelStatus {
    state: 'loading' | 'ready' | 'failed';
    model?: { path?: string; family?: string; threads?: number; gpu_layers?: number; description?: string };
    error?: string;
}

interface LastStats {
    prompt_tokens?: number;
    evaluated_tokens?: number;
    generated_tokens?: number;
    prompt_ms?: number;
    generate_ms?: number;
    cancelled?: boolean;
}

/** Model, last latency, local/cloud, on/off; polls locode/status and locode/lastStats. */
class StatusBar implements vscode.Disposable {
    private readonly item = vscode.window.createStatusBarItem('locode.status', vscode.StatusBarAlignment.Right, 100);
    private text = 'locode';
    private timer: NodeJS.Timeout | undefined;
    private polling = false;
    private c: LanguageClient | undefined;
    private status: ModelStatus | undefined;
    private stats: LastStats | undefined;
    private lastMs: number | undefined;
    private where: 'local' | 'cloud' = 'local';
    private error: string | undefined;

    constructor() {
        this.item.command = 'locode.menu';
        this.item.name = 'locode';
        this.update();
        this.item.show();
    }

    attach(c: LanguageClient): void {
        this.c = c;
        this.status = undefined;
        this.error = undefined;
        this.schedule(500);
        this.update();
    }

    failed(msg: string): void {
        this.error = msg;
        this.update();
    }

    latency(ms: number, where: 'local' | 'cloud'): void {
        this.lastMs = ms;
        this.where = where;
        this.update();
    }

    private schedule(ms: number): void {
        if (this.timer) {
            clearTimeout(this.timer);
        }
        this.timer = setTimeout(() => void this.poll(), ms);
    }

    private async poll(): Promise<void> {
        const c = this.c;
        if (this.polling || !c || c !== client) {
            return;
        }
        this.polling = true;
        try {
            if (c.state === State.Running) {
                this.status = await c.sendRequest<ModelStatus>('locode/status');
                const doc = vscode.window.activeTextEditor?.document;
                if (doc && this.status.state === 'ready') {
                    this.stats =
                        (await c.sendRequest<LastStats | null>('locode/lastStats', {
                            uri: c.code2ProtocolConverter.asUri(doc.uri),
                        })) ?? undefined;
                }
            }
        } catch {
            // the server restarts or stops; try again later
        } finally {
            this.polling = false;
            this.update();
            // Fast while the model loads, then now and then.
            this.schedule(this.status?.state === 'loading' || !this.status ? 500 : 3000);
        }
    }

    /** What the item says, in words (the menu's placeholder, the item's accessible label). */
    summary(): string {
        return this.text;
    }

    update(): void {
        const doc = vscode.window.activeTextEditor?.document;
        const lang = doc && LANGUAGES.includes(doc.languageId as (typeof LANGUAGES)[number]) ? doc.languageId : undefined;
        const enabled = lang ? enabledFor(doc) : configuration().get<boolean>('enabled', true);
        let words: string;
        const tip = new vscode.MarkdownString(undefined, true);
        tip.appendMarkdown('**locode**: offline code completion\n\n');
        let text: string;
        if (this.error) {
            text = '$(error) locode';
            words = 'locode: the server failed to start';
            tip.appendText(`Server failed to start: ${this.error}`);
        } else if (!this.status || this.c?.state !== State.Running) {
            text = '$(loading~spin) locode';
            words = 'locode: starting';
            tip.appendText('Starting the server…');
        } else if (this.status.state === 'loading') {
            text = '$(loading~spin) locode: loading model';
            words = 'locode: loading the model';
            tip.appendText('Loading the model…');
        } else if (this.status.state === 'failed') {
            text = '$(error) locode';
            words = 'locode: the model failed to load';
            tip.appendText(`The model failed to load: ${this.status.error ?? 'unknown error'}`);
        } else {
            const m = this.status.model ?? {};
            const name = m.path ? m.path.split(/[\\/]/).pop() : 'model';
            const off = snoozed() ? 'snoozed' : !enabled ? (lang ? `off for ${lang}` : 'off') : undefined;
            const parts = [off ? `${snoozed() ? '$(clock)' : '$(circle-slash)'} locode ${off}` : '$(sparkle) locode'];
            if (!off && this.lastMs !== undefined) {
                parts.push(`${this.lastMs} ms`, this.where);
            }
            text = parts.join(' · ');
            words = `locode: model ready (${name})${off ? `, completions ${off}` : ''}`;
            tip.appendMarkdown(`Model: \`${name}\` (${m.family ?? '?'})  \n`);
            if (m.threads !== undefined) {
                tip.appendMarkdown(`Threads: ${m.threads}, GPU layers: ${m.gpu_layers ?? 0}  \n`);
            }
            if (this.stats && !this.stats.cancelled) {
                const s = this.stats;
                tip.appendMarkdown(
                    `Last completion: ${s.prompt_tokens ?? 0} prompt tokens (${s.evaluated_tokens ?? 0} evaluated) in ` +
                        `${Math.round(s.prompt_ms ?? 0)} ms, ${s.generated_tokens ?? 0} generated in ` +
                        `${Math.round(s.generate_ms ?? 0)} ms  \n`,
                );
            }
            if (this.lastMs !== undefined) {
                tip.appendMarkdown(`Last request: ${this.lastMs} ms (${this.where})  \n`);
            }
            tip.appendMarkdown(`\nCompletions are **${off ?? 'on'}**; click for the menu (on/off, snooze).`);
        }
        this.text = words;
        this.item.text = text;
        this.item.tooltip = tip;
        this.item.accessibilityInformation = { label: words, role: 'button' };
    }

    dispose(): void {
        if (this.timer) {
            clearTimeout(this.timer);
        }
        this.item.dispose();
    }
}
