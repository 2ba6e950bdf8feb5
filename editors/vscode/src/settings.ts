// The server settings the extension sends: as initializationOptions when it
// starts the server and, under a `locode` key, with
// workspace/didChangeConfiguration when they change. No `vscode` import, so
// the tests (plain Node) send exactly what the extension sends.

import * as os from 'os';

/** Settings of the `locode.*` section that the server reads (README "Configuration"). */
export const SERVER_SETTING_KEYS = [
    'model',
    'family',
    'threads',
    'contextSize',
    'gpuLayers',
    'slots',
    'batchSize',
    'enabled',
    'maxTokens',
    'maxLines',
    'prefixLines',
    'suffixLines',
    'earlyAnswerMs',
    'cloud',
    'completionEngine',
] as const;

/** The languages locode serves (its activation events and document selector). */
export const LANGUAGES = [
    'python',
    'rust',
    'typescript',
    'typescriptreact',
    'javascript',
    'javascriptreact',
    'go',
    'c',
    'cpp',
    'java',
] as const;

/**
 * Settings the extension always sends: ghost text only (no completion items
 * in the suggest widget), and explanations returned to the extension, which
 * shows them in its own panel (the server opens no document of its own).
 */
export const FIXED_SETTINGS = { completionItems: 'never', explainOutput: 'result' } as const;

export type ServerSettingKey = (typeof SERVER_SETTING_KEYS)[number];
export type ServerSettings = Partial<Record<ServerSettingKey, string | number | boolean | object | null>> &
    Partial<Record<keyof typeof FIXED_SETTINGS, string>>;

/** The part of `vscode.WorkspaceConfiguration` this module uses. */
export interface ConfigurationLike {
    get<T>(key: string): T | undefined;
}

function expandHome(p: string): string {
    if (p === '~') {
        return os.homedir();
    }
    if (p.startsWith('~/')) {
        return os.homedir() + p.slice(1);
    }
    return p;
}

/**
 * The server settings for a `locode` configuration section. Empty strings
 * (model, family) and `null` numbers (threads, gpuLayers) go out as `null`,
 * which the server reads as "its default", so clearing a setting takes
 * effect too. `cloud` and `completionEngine` go as the objects the user
 * wrote (the server replaces each as a whole). `enabled`, when given, is
 * the extension's own answer (snoozed, or off for every language it
 * serves); per-language enabling is the extension's: it does not ask for
 * ghost text in a language where it is off.
 */
export function serverSettings(cfg: ConfigurationLike, enabled?: boolean): ServerSettings {
    const out: ServerSettings = { ...FIXED_SETTINGS };
    for (const key of SERVER_SETTING_KEYS) {
        const v = cfg.get<unknown>(key);
        if (key === 'model' || key === 'family') {
            const s = typeof v === 'string' ? v.trim() : '';
            out[key] = s === '' ? null : key === 'model' ? expandHome(s) : s;
        } else if (key === 'cloud' || key === 'completionEngine') {
            out[key] = v !== null && typeof v === 'object' && !Array.isArray(v) ? { ...(v as object) } : {};
        } else if (v === null) {
            out[key] = null;
        } else if (typeof v === 'number' || typeof v === 'boolean') {
            out[key] = v;
        }
        // undefined (not contributed, e.g. an old package.json): left to the server.
    }
    if (enabled !== undefined) {
        out.enabled = enabled;
    }
    return out;
}

/** `cloud.route` is anything but `never`: the cloud actions are shown. */
export function cloudEnabled(cfg: ConfigurationLike): boolean {
    const cloud = cfg.get<{ route?: unknown }>('cloud');
    return typeof cloud?.route === 'string' && cloud.route !== 'never';
}

/** The `workspace/didChangeConfiguration` params for these settings. */
export function didChangeConfigurationParams(settings: ServerSettings): { settings: { locode: ServerSettings } } {
    return { settings: { locode: settings } };
}

/**
 * A configuration whose values are the defaults that package.json
 * contributes (`contributes.configuration.properties["locode.*"].default`),
 * overridden by `overrides`: what a user who changed nothing (or only those
 * keys) has.
 */
export function configurationFromPackageJson(
    pkg: { contributes?: { configuration?: { properties?: Record<string, { default?: unknown }> } } },
    overrides: Record<string, unknown> = {},
): ConfigurationLike {
    const props = pkg.contributes?.configuration?.properties ?? {};
    return {
        get<T>(key: string): T | undefined {
            if (Object.prototype.hasOwnProperty.call(overrides, key)) {
                return overrides[key] as T;
            }
            const p = props[`locode.${key}`];
            return p ? (p.default as T) : undefined;
        },
    };
}
