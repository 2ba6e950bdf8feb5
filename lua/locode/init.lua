-- locode.nvim: offline AI code completion from the locode language server.
--
--   require("locode").setup({ cmd = { "/path/to/locode", "serve" } })
--
-- or, on Neovim 0.11+, `vim.lsp.enable("locode")` with the config in
-- lsp/locode.lua. Runs on 0.7.2 and later: this plugin draws the ghost text
-- with extmarks, except on 0.12+ where vim.lsp.inline_completion draws it
-- (option `ghost_text`). See `:help locode`.

local api = vim.api
local uv = vim.uv or vim.loop

local M = {}

local NAME = "locode"
local ns = api.nvim_create_namespace("locode_ghost_text")

local DEFAULT_FILETYPES = {
  "python", "rust", "typescript", "typescriptreact", "javascript", "javascriptreact",
  "go", "c", "cpp", "java",
}

local defaults = {
  -- Command that starts the server (LSP on stdio).
  cmd = { "locode", "serve" },
  -- Filetypes the server is started for.
  filetypes = DEFAULT_FILETYPES,
  -- setup() starts the server for `filetypes` itself (a FileType autocmd).
  -- false: only configure (use vim.lsp.enable("locode") on 0.11+).
  autostart = true,
  -- Files or folders whose parent is the workspace root (nearest ancestor
  -- holding one); else the current directory.
  root_markers = { ".git" },
  -- Server settings (README "Configuration"): sent as initializationOptions
  -- and with workspace/didChangeConfiguration, e.g. { threads = 4, maxLines = 6 }.
  settings = {},
  -- Ghost text: "auto" (vim.lsp.inline_completion on 0.12+, else this
  -- plugin's own), "builtin", "plugin", or false (none).
  ghost_text = "auto",
  -- Milliseconds of quiet typing before a suggestion is requested.
  debounce_ms = 75,
  -- Insert-mode keys, mapped in a buffer only while a suggestion is shown
  -- there, so that otherwise the key does what it did before (your own
  -- mapping, nvim-cmp's, a snippet engine's, or the key itself). false
  -- leaves one unmapped.
  keymaps = {
    accept = "<Tab>",
    accept_word = "<M-Right>",
    accept_line = "<M-Down>",
    dismiss = "<C-]>",
    next = "<M-]>",
    prev = "<M-[>",
  },
  -- Set 'omnifunc' to the LSP one in attached buffers. The server offers
  -- completion items only to clients without inline completion unless its
  -- setting completionItems is "always".
  omnifunc = false,
  -- Extra fields for the client config (on_attach, capabilities, flags, ...).
  client = {},
}

M.config = vim.deepcopy(defaults)
M.default_filetypes = DEFAULT_FILETYPES

---------------------------------------------------------------------------
-- Version-independent helpers
---------------------------------------------------------------------------

local has_011 = vim.fn.has("nvim-0.11") == 1
local has_inline_virt_text = vim.fn.has("nvim-0.10") == 1

local function notify(msg, level)
  vim.schedule(function()
    vim.notify("locode: " .. msg, level or vim.log.levels.INFO)
  end)
end

-- Client methods became `client:method()` in 0.11; the dot form warns there.
local function c_request(client, method, params, handler, bufnr)
  if has_011 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

local function c_request_sync(client, method, params, timeout, bufnr)
  if has_011 then
    return client:request_sync(method, params, timeout, bufnr)
  end
  return client.request_sync(method, params, timeout, bufnr)
end

local function c_notify(client, method, params)
  if has_011 then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

local function c_cancel(client, id)
  if has_011 then
    return client:cancel_request(id)
  end
  return client.cancel_request(id)
end

local function is_stopped(client)
  local ok, stopped
  if has_011 then
    ok, stopped = pcall(client.is_stopped, client)
  else
    ok, stopped = pcall(client.is_stopped)
  end
  return ok and stopped or false
end

local function get_clients(bufnr)
  local out = {}
  local all
  if vim.lsp.get_clients then
    all = vim.lsp.get_clients({ name = NAME, bufnr = bufnr })
  else
    all = bufnr and vim.lsp.buf_get_clients(bufnr) or vim.lsp.get_active_clients()
  end
  for _, c in pairs(all) do
    if c.name == NAME and not is_stopped(c) then
      table.insert(out, c)
    end
  end
  return out
end

local function resolve(bufnr)
  if bufnr == nil or bufnr == 0 then
    return api.nvim_get_current_buf()
  end
  return bufnr
end

--- The locode client attached to a buffer (default: current), or nil.
function M.client(bufnr)
  return get_clients(resolve(bufnr))[1]
end

-- The document version the client last sent: from 0.11 on it is the
-- buffer's changedtick (vim.lsp.util.buf_versions is internal there).
local function lsp_version(bufnr)
  if has_011 then
    return api.nvim_buf_get_changedtick(bufnr)
  end
  local versions = vim.lsp.util.buf_versions
  return versions and versions[bufnr] or api.nvim_buf_get_changedtick(bufnr)
end

-- Byte index in `line` -> LSP character index in `enc`.
local function byte_to_char(line, byte, enc)
  if enc == "utf-8" then
    return byte
  end
  local units, i = 0, 1
  while i <= byte and i <= #line do
    local b = line:byte(i)
    local len = b < 0x80 and 1 or b < 0xE0 and 2 or b < 0xF0 and 3 or 4
    units = units + ((enc == "utf-16" and len == 4) and 2 or 1)
    i = i + len
  end
  return units
end

-- LSP character index in `enc` -> byte index in `line`.
local function char_to_byte(line, char, enc)
  if enc == "utf-8" then
    return math.min(char, #line)
  end
  local units, i = 0, 1
  while units < char and i <= #line do
    local b = line:byte(i)
    local len = b < 0x80 and 1 or b < 0xE0 and 2 or b < 0xF0 and 3 or 4
    units = units + ((enc == "utf-16" and len == 4) and 2 or 1)
    i = i + len
  end
  return i - 1
end

local function buf_line(bufnr, row)
  return api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
end

local function encoding(client)
  return client.offset_encoding or "utf-16"
end

local function cursor_of(bufnr)
  local win = api.nvim_get_current_win()
  if api.nvim_win_get_buf(win) ~= bufnr then
    return nil
  end
  local pos = api.nvim_win_get_cursor(win)
  return pos[1] - 1, pos[2]
end

local function in_insert_mode()
  return api.nvim_get_mode().mode:sub(1, 1) == "i"
end

---------------------------------------------------------------------------
-- Settings and enabling
---------------------------------------------------------------------------

-- An empty Lua table encodes as a JSON array; settings must be an object.
local function object(t)
  t = vim.deepcopy(t or {})
  if next(t) == nil then
    return vim.empty_dict()
  end
  return t
end

-- The settings sent: the user's, and explanations as the command's result
-- only, since this plugin shows them itself (the server would also open
-- them as a document otherwise).
local function server_settings()
  local t = vim.deepcopy(M.config.settings or {})
  if t.explainOutput == nil then
    t.explainOutput = "result"
  end
  return t
end

local function settings_payload()
  return { locode = object(server_settings()) }
end

--- Merges `settings` into the server settings and sends them to every
--- running locode client (workspace/didChangeConfiguration).
function M.configure(settings)
  M.config.settings = vim.tbl_deep_extend("force", M.config.settings, settings or {})
  for _, client in ipairs(get_clients()) do
    if client.config then
      client.config.settings = settings_payload()
    end
    c_notify(client, "workspace/didChangeConfiguration", { settings = settings_payload() })
  end
end

-- Filetypes switched off at run time (:LocodeDisable filetype).
local disabled_filetypes = {}

--- Whether suggestions are offered in a buffer: `vim.b.locode_enabled`
--- when set, else false for a filetype switched off, else the server
--- setting `enabled`.
function M.is_enabled(bufnr)
  bufnr = resolve(bufnr)
  local b = vim.b[bufnr].locode_enabled
  if b ~= nil then
    return b ~= false and b ~= 0
  end
  if disabled_filetypes[vim.bo[bufnr].filetype] then
    return false
  end
  return M.config.settings.enabled ~= false
end

---------------------------------------------------------------------------
-- Per-buffer state
---------------------------------------------------------------------------

-- bufnr -> {
--   timer, req = {client, id},
--   items, index: the candidates; each {visible, extra}: `visible` goes in
--     at the anchor, replacing `extra` bytes after it on its line
--   row, col, tick: the anchor (cursor) and changedtick they belong to
--   shown: the item drawn, or nil
--   builtin: ghost text drawn by vim.lsp.inline_completion
--   keys_on, saved: accept keys mapped, and the buffer mappings they hid
-- }
local states = {}

local function state(bufnr)
  local s = states[bufnr]
  if not s then
    s = { saved = {} }
    states[bufnr] = s
  end
  return s
end

local function use_builtin()
  local g = M.config.ghost_text
  if g == "builtin" or g == "auto" then
    return vim.lsp.inline_completion ~= nil and vim.lsp.inline_completion.enable ~= nil
  end
  return false
end

--- Which ghost text a buffer gets: "builtin", "plugin", or nil.
function M.ghost_text_path(bufnr)
  local s = states[resolve(bufnr)]
  if s and s.attached then
    return s.builtin and "builtin" or (M.config.ghost_text and "plugin" or nil)
  end
  if not M.config.ghost_text then
    return nil
  end
  return use_builtin() and "builtin" or "plugin"
end

-- A completion menu is open: Neovim's own (pumvisible), nvim-cmp's or
-- blink.cmp's. Ghost text then stays hidden.
local function menu_visible()
  if vim.fn.pumvisible() == 1 then
    return true
  end
  local cmp = package.loaded["cmp"]
  if cmp and type(cmp.visible) == "function" then
    local ok, v = pcall(cmp.visible)
    if ok and v then
      return true
    end
  end
  local blink = package.loaded["blink.cmp"]
  if blink and type(blink.is_visible) == "function" then
    local ok, v = pcall(blink.is_visible)
    if ok and v then
      return true
    end
  end
  return false
end

---------------------------------------------------------------------------
-- Keys: mapped only while a suggestion is shown
---------------------------------------------------------------------------

local KEY_NAMES = { "accept", "accept_word", "accept_line", "dismiss", "next", "prev" }
local DESC = "locode: "
local key_actions -- name -> function(bufnr): true when it did something

local function current_map(bufnr, lhs)
  local m
  api.nvim_buf_call(bufnr, function()
    m = vim.fn.maparg(lhs, "i", false, true)
  end)
  if type(m) ~= "table" or m.lhs == nil then
    return nil
  end
  return m
end

-- The buffer-local insert mapping of `lhs` (with its Lua callback), or nil.
local function buffer_map(bufnr, lhs)
  local m = current_map(bufnr, lhs)
  if not m or m.buffer ~= 1 then
    return nil
  end
  for _, bm in ipairs(api.nvim_buf_get_keymap(bufnr, "i")) do
    if bm.lhs == m.lhs then
      return bm
    end
  end
  return nil
end

local function is_ours(m)
  return m and type(m.desc) == "string" and m.desc:sub(1, #DESC) == DESC
end

local function restore_map(bufnr, lhs, m)
  local rhs = m.callback or m.rhs or ""
  local opts = {
    buffer = bufnr,
    expr = m.expr == 1,
    remap = m.noremap ~= 1,
    silent = m.silent == 1,
    nowait = m.nowait == 1,
    desc = m.desc,
  }
  if opts.expr then
    -- As it was (0.7 reports no such field: its vim.keymap.set already
    -- wrapped the callback that replaces them).
    opts.replace_keycodes = m.replace_keycodes == 1
  end
  pcall(vim.keymap.set, "i", lhs, rhs, opts)
end

local fallthrough

local function keys_on(bufnr)
  local s = state(bufnr)
  if s.keys_on or not api.nvim_buf_is_valid(bufnr) then
    return
  end
  s.keys_on = true
  local k = M.config.keymaps or {}
  for _, name in ipairs(KEY_NAMES) do
    local lhs = k[name]
    if lhs then
      local prev = buffer_map(bufnr, lhs)
      if prev and not is_ours(prev) then
        s.saved[lhs] = prev
      end
      vim.keymap.set("i", lhs, function()
        if not key_actions[name](bufnr) then
          fallthrough(bufnr, lhs)
        end
      end, { buffer = bufnr, silent = true, nowait = true, desc = DESC .. name:gsub("_", " ") })
    end
  end
end

local function keys_off(bufnr)
  local s = states[bufnr]
  if not s or not s.keys_on then
    return
  end
  s.keys_on = false
  if not api.nvim_buf_is_valid(bufnr) then
    return
  end
  local k = M.config.keymaps or {}
  for _, name in ipairs(KEY_NAMES) do
    local lhs = k[name]
    if lhs then
      -- Leave a mapping someone else made meanwhile alone.
      if is_ours(buffer_map(bufnr, lhs)) then
        pcall(api.nvim_buf_del_keymap, bufnr, "i", lhs)
        if s.saved[lhs] then
          restore_map(bufnr, lhs, s.saved[lhs])
        end
      end
    end
  end
  s.saved = {}
end

-- The key pressed while nothing could be accepted: unmap ours and feed the
-- key again, remapped, so that whatever it meant before runs.
fallthrough = function(bufnr, lhs)
  keys_off(bufnr)
  api.nvim_feedkeys(api.nvim_replace_termcodes(lhs, true, false, true), "mi", false)
end

---------------------------------------------------------------------------
-- Ghost text drawn by this plugin (Neovim < 0.12, or ghost_text = "plugin")
---------------------------------------------------------------------------

local function clear_ghost(bufnr)
  local s = states[bufnr]
  if s then
    s.shown = nil
    if not s.builtin then
      keys_off(bufnr)
    end
  end
  if api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  end
end

-- Forgets the suggestion altogether (not only its drawing).
local function drop(bufnr)
  local s = states[bufnr]
  if s then
    s.items, s.index = nil, nil
  end
  clear_ghost(bufnr)
end

local function cancel_pending(bufnr)
  local s = states[bufnr]
  if not s then
    return
  end
  if s.timer then
    s.timer:stop()
  end
  if s.req then
    pcall(c_cancel, s.req.client, s.req.id)
    s.req = nil
  end
end

--- Turns an InlineCompletionItem into {visible, extra}: the text still to
--- come after the cursor (row, col) and the bytes after the cursor it
--- replaces. nil when the item does not fit the text before the cursor.
local function normalize_item(bufnr, client, raw, row, col)
  local text = raw.insertText
  if type(text) == "table" then
    text = text.value -- a snippet: shown and inserted as plain text
  end
  if type(text) ~= "string" or text == "" then
    return nil
  end
  local enc = encoding(client)
  local line = buf_line(bufnr, row)
  local extra = 0
  if raw.range then
    local srow = raw.range.start.line
    local scol = char_to_byte(buf_line(bufnr, srow), raw.range.start.character, enc)
    local erow = raw.range["end"].line
    local ecol = char_to_byte(buf_line(bufnr, erow), raw.range["end"].character, enc)
    if srow ~= row or scol > col then
      return nil
    end
    -- Text between the range start and the cursor is already typed: skip it.
    local typed = line:sub(scol + 1, col)
    if text:sub(1, #typed) ~= typed then
      return nil
    end
    text = text:sub(#typed + 1)
    if erow == row and ecol > col then
      extra = ecol - col
    end
  end
  if text == "" then
    return nil
  end
  return { visible = text, extra = extra }
end

local function render(bufnr, item)
  local s = state(bufnr)
  api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  if menu_visible() then
    s.shown = nil
    keys_off(bufnr)
    return
  end
  local lines = vim.split(item.visible, "\n", { plain = true })
  local line = buf_line(bufnr, s.row)
  local at_eol = s.col >= #line
  local opts = { hl_mode = "combine" }
  if has_inline_virt_text then
    opts.virt_text_pos = "inline"
  elseif at_eol then
    opts.virt_text_pos = "overlay"
  else
    opts.virt_text_pos = "eol"
  end
  opts.virt_text = { { lines[1], "LocodeGhostText" } }
  if #lines > 1 then
    local vl = {}
    for i = 2, #lines do
      table.insert(vl, { { lines[i], "LocodeGhostText" } })
    end
    opts.virt_lines = vl
  end
  pcall(api.nvim_buf_set_extmark, bufnr, ns, s.row, math.min(s.col, #line), opts)
  s.shown = item
  keys_on(bufnr)
end

-- Brings the suggestion up to date with the buffer and cursor. Characters
-- typed since it was drawn that match its start are taken off its front
-- and the rest is drawn at once (typing through it never blanks it); any
-- other change drops it. Runs at each change and before each accept, so
-- keys typed ahead of an accept key (before TextChangedI could fire) are
-- accounted for. Returns the item shown afterwards, or nil.
local function reconcile(bufnr)
  local s = states[bufnr]
  if not s or not s.items or not s.index then
    return nil
  end
  local row, col = cursor_of(bufnr)
  local tick = api.nvim_buf_get_changedtick(bufnr)
  if row == s.row and col == s.col and tick == s.tick then
    if not s.shown and not menu_visible() then
      render(bufnr, s.items[s.index])
    end
    return s.shown
  end
  local item = s.items[s.index]
  if row ~= s.row or not col or col <= s.col then
    drop(bufnr)
    return nil
  end
  local typed = buf_line(bufnr, row):sub(s.col + 1, col)
  if #typed >= #item.visible or item.visible:sub(1, #typed) ~= typed then
    drop(bufnr)
    return nil
  end
  local rest = { visible = item.visible:sub(#typed + 1), extra = item.extra }
  s.items, s.index, s.col, s.tick = { rest }, 1, col, tick
  render(bufnr, rest)
  return s.shown
end

--- Requests a suggestion at the cursor now (cancelling any pending one).
--- `invoked` marks an explicit request (triggerKind Invoked).
function M.request(bufnr, invoked)
  bufnr = resolve(bufnr)
  local client = M.client(bufnr)
  if not client or not M.is_enabled(bufnr) then
    return
  end
  cancel_pending(bufnr)
  local row, col = cursor_of(bufnr)
  if not row then
    return
  end
  local s = state(bufnr)
  local tick = api.nvim_buf_get_changedtick(bufnr)
  local line = buf_line(bufnr, row)
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    position = { line = row, character = byte_to_char(line, col, encoding(client)) },
    context = { triggerKind = invoked and 1 or 2 },
  }
  local ok, id
  ok, id = c_request(client, "textDocument/inlineCompletion", params, function(err, result)
    -- A cancelled or superseded request still gets its answer: drop it.
    if not s.req or s.req.id ~= id then
      return
    end
    s.req = nil
    if err or not result or not api.nvim_buf_is_valid(bufnr) or not M.is_enabled(bufnr) then
      return
    end
    -- Stale: the buffer or cursor moved on meanwhile.
    local r, c = cursor_of(bufnr)
    if api.nvim_buf_get_changedtick(bufnr) ~= tick or r ~= row or c ~= col then
      return
    end
    local items = {}
    for _, raw in ipairs(result.items or result) do
      local it = normalize_item(bufnr, client, raw, row, col)
      if it then
        table.insert(items, it)
      end
    end
    if #items == 0 then
      drop(bufnr)
      return
    end
    s.items, s.index, s.row, s.col, s.tick = items, 1, row, col, tick
    render(bufnr, items[1])
  end, bufnr)
  if ok and id then
    s.req = { client = client, id = id }
  end
end

local function schedule_request(bufnr)
  local s = state(bufnr)
  reconcile(bufnr)
  cancel_pending(bufnr)
  if not M.is_enabled(bufnr) then
    drop(bufnr)
    return
  end
  if not s.timer then
    s.timer = uv.new_timer()
  end
  s.timer:start(M.config.debounce_ms, 0, vim.schedule_wrap(function()
    if api.nvim_buf_is_valid(bufnr) and api.nvim_get_current_buf() == bufnr and in_insert_mode() then
      M.request(bufnr)
    end
  end))
end

--- True while a suggestion request of this plugin is in flight.
function M.pending(bufnr)
  local s = states[resolve(bufnr)]
  return s ~= nil and s.req ~= nil
end

--- The suggestion shown in a buffer (plugin ghost text) as {visible, extra},
--- or nil.
function M.current(bufnr)
  local s = states[resolve(bufnr)]
  return s and s.shown or nil
end

-- Puts `text` (the first part of the shown item, or all of it) in at the
-- cursor; the rest stays shown.
local function insert(bufnr, item, text)
  local s = state(bufnr)
  local whole = text == item.visible
  local lines = vim.split(text, "\n", { plain = true })
  local line = buf_line(bufnr, s.row)
  local ecol = whole and math.min(s.col + item.extra, #line) or s.col
  api.nvim_buf_set_text(bufnr, s.row, s.col, s.row, ecol, lines)
  local row = s.row + #lines - 1
  local col = (#lines == 1 and s.col or 0) + #lines[#lines]
  api.nvim_win_set_cursor(0, { row + 1, col })
  if whole then
    drop(bufnr)
    return
  end
  local rest = { visible = item.visible:sub(#text + 1), extra = item.extra }
  if row ~= s.row then
    rest.extra = 0
  end
  s.items, s.index = { rest }, 1
  s.row, s.col, s.tick = row, col, api.nvim_buf_get_changedtick(bufnr)
  render(bufnr, rest)
end

local function first_word(text)
  return text:match("^%s*[%w_]+") or text:match("^%s*[^%w_%s]+") or text:match("^%s+") or text
end

local function first_line(text)
  local line = text:match("^[^\n]*")
  if line == "" and text:sub(1, 1) == "\n" then
    line = "\n" .. (text:sub(2):match("^[^\n]*") or "")
  end
  return line
end

---------------------------------------------------------------------------
-- Neovim 0.12+: vim.lsp.inline_completion draws the ghost text
---------------------------------------------------------------------------

local function builtin_active(bufnr)
  local s = states[bufnr]
  return s and s.builtin
end

-- Accepts the part of the built-in's current item that `pick` selects
-- (all of it when nil). Its item keeps the range it was asked for, while
-- the built-in keeps showing it as you type on; so what was typed since is
-- skipped here and the rest goes in at the cursor, never in front of the
-- typed characters. Returns false when nothing is shown.
local function builtin_accept(bufnr, pick)
  return vim.lsp.inline_completion.get({
    bufnr = bufnr,
    on_accept = function(item)
      local text = item.insert_text
      if type(text) ~= "string" then
        text = text and text.value or ""
      end
      local row, col = cursor_of(bufnr)
      if not row then
        return
      end
      local r = item.range
      local srow = r and r.start and r.start.row
      local scol = r and r.start and r.start.col
      local extra = 0
      if srow ~= nil then
        if srow ~= row or scol > col then
          return
        end
        local typed = buf_line(bufnr, row):sub(scol + 1, col)
        if text:sub(1, #typed) ~= typed then
          return -- typed past it: out of date
        end
        text = text:sub(#typed + 1)
        -- Text after the cursor the item replaces (the server's ranges
        -- usually end at the cursor it was asked at).
        local e = r.end_ or r["end"]
        if not pick and e and e.row == row and e.col > col then
          extra = e.col - col
        end
      end
      local part = pick and pick(text) or text
      if part == "" then
        return
      end
      local lines = vim.split(part, "\n", { plain = true })
      local line = buf_line(bufnr, row)
      api.nvim_buf_set_text(bufnr, row, col, row, math.min(col + extra, #line), lines)
      api.nvim_win_set_cursor(0, { row + #lines, (#lines == 1 and col or 0) + #lines[#lines] })
    end,
  }) and true or false
end

-- Asks the built-in inline completion to request again now (what it does
-- itself after CursorMovedI): its own autocmd's callback when it can be
-- found, else the event.
local function builtin_rerequest(bufnr)
  local ok, cmds = pcall(api.nvim_get_autocmds, { event = "CursorMovedI", buffer = bufnr })
  if ok then
    for _, au in ipairs(cmds) do
      if type(au.callback) == "function" and tostring(au.group_name or ""):find("inline_completion", 1, true) then
        au.callback({ buf = bufnr, event = "CursorMovedI" })
        return
      end
    end
  end
  api.nvim_exec_autocmds("CursorMovedI", { buffer = bufnr, modeline = false })
end

local builtin_ns
local decoration_set = false

-- The built-in draws its ghost text without telling anyone: at each redraw
-- of a window, map the accept keys if its extmark is there, unmap if not.
local function watch_builtin()
  if decoration_set then
    return
  end
  decoration_set = true
  api.nvim_set_decoration_provider(api.nvim_create_namespace("locode_builtin_watch"), {
    on_win = function(_, _, bufnr)
      local s = states[bufnr]
      if s and s.builtin then
        builtin_ns = builtin_ns or api.nvim_get_namespaces()["nvim.lsp.inline_completion"]
        local shown = builtin_ns ~= nil
          and #api.nvim_buf_get_extmarks(bufnr, builtin_ns, 0, -1, { limit = 1 }) > 0
        if shown ~= (s.keys_on == true) then
          vim.schedule(function()
            if shown then
              keys_on(bufnr)
            else
              keys_off(bufnr)
            end
          end)
        end
      end
      return false
    end,
  })
end

---------------------------------------------------------------------------
-- Accept, dismiss, cycle
---------------------------------------------------------------------------

--- Accepts the whole suggestion. Returns true when there was one.
function M.accept(bufnr)
  bufnr = resolve(bufnr)
  if builtin_active(bufnr) then
    return builtin_accept(bufnr, nil)
  end
  local item = reconcile(bufnr)
  if not item then
    return false
  end
  insert(bufnr, item, item.visible)
  return true
end

--- Accepts the next word of the suggestion (with leading blanks).
function M.accept_word(bufnr)
  bufnr = resolve(bufnr)
  if builtin_active(bufnr) then
    return builtin_accept(bufnr, first_word)
  end
  local item = reconcile(bufnr)
  if not item then
    return false
  end
  insert(bufnr, item, first_word(item.visible))
  return true
end

--- Accepts the suggestion up to the end of its current line.
function M.accept_line(bufnr)
  bufnr = resolve(bufnr)
  if builtin_active(bufnr) then
    return builtin_accept(bufnr, first_line)
  end
  local item = reconcile(bufnr)
  if not item then
    return false
  end
  insert(bufnr, item, first_line(item.visible))
  return true
end

--- Hides the suggestion and cancels the pending request.
function M.dismiss(bufnr)
  bufnr = resolve(bufnr)
  if builtin_active(bufnr) then
    -- The built-in one has no dismiss: toggling clears its ghost text.
    local shown = builtin_ns ~= nil and #api.nvim_buf_get_extmarks(bufnr, builtin_ns, 0, -1, { limit = 1 }) > 0
    vim.lsp.inline_completion.enable(false, { bufnr = bufnr })
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    keys_off(bufnr)
    return shown
  end
  local shown = M.current(bufnr) ~= nil
  cancel_pending(bufnr)
  drop(bufnr)
  return shown
end

--- Shows the next (count = 1) or previous (-1) candidate; asks for
--- candidates when only one is known.
function M.next(bufnr, count)
  bufnr = resolve(bufnr)
  count = count or 1
  if builtin_active(bufnr) then
    vim.lsp.inline_completion.select({ bufnr = bufnr, count = count })
    return true
  end
  local s = state(bufnr)
  if not reconcile(bufnr) or not s.items or #s.items < 2 then
    M.request(bufnr, true)
    return true
  end
  s.index = (s.index - 1 + count) % #s.items + 1
  render(bufnr, s.items[s.index])
  return true
end

key_actions = {
  accept = M.accept,
  accept_word = M.accept_word,
  accept_line = M.accept_line,
  dismiss = M.dismiss,
  next = function(b) return M.next(b, 1) end,
  prev = function(b) return M.next(b, -1) end,
}

---------------------------------------------------------------------------
-- Status (for the statusline and :checkhealth)
---------------------------------------------------------------------------

-- client id -> last locode/status answer
local status_of = {}

local function refresh_status(client, again)
  c_request(client, "locode/status", nil, function(err, result)
    if err or type(result) ~= "table" then
      return
    end
    status_of[client.id] = result
    -- While the model loads, look again now and then.
    if again and result.state == "loading" and not is_stopped(client) then
      vim.defer_fn(function() refresh_status(client, true) end, 500)
    end
    pcall(vim.cmd, "redrawstatus")
  end)
end

--- A short status for a statusline: "" when locode is not attached to the
--- buffer, else "locode", "locode:loading", "locode:failed", "locode:off"
--- (disabled here) or "locode:…" (a suggestion is being asked for).
function M.statusline(bufnr)
  bufnr = resolve(bufnr)
  local client = M.client(bufnr)
  if not client then
    return ""
  end
  if not M.is_enabled(bufnr) then
    return "locode:off"
  end
  local st = status_of[client.id]
  if not st or st.state == "loading" then
    return "locode:loading"
  end
  if st.state == "failed" then
    return "locode:failed"
  end
  if M.pending(bufnr) then
    return "locode:…"
  end
  return "locode"
end

---------------------------------------------------------------------------
-- Attaching to a buffer
---------------------------------------------------------------------------

local augroup = api.nvim_create_augroup("locode", { clear = true })

local function buffer_group(bufnr)
  return api.nvim_create_augroup("locode_buf_" .. bufnr, { clear = true })
end

local function builtin_enable(bufnr, on)
  if vim.lsp.inline_completion.is_enabled({ bufnr = bufnr }) ~= on then
    vim.lsp.inline_completion.enable(on, { bufnr = bufnr })
  end
end

-- Wires ghost text, keys and autocmds into a buffer. Safe to run again
-- (setup() called twice, a second client): each buffer has its own
-- autocmd group, cleared and filled anew.
local function setup_buffer(bufnr)
  local s = state(bufnr)
  s.attached = true
  local group = buffer_group(bufnr)
  if M.config.omnifunc then
    vim.bo[bufnr].omnifunc = "v:lua.vim.lsp.omnifunc"
  end
  s.builtin = M.config.ghost_text and use_builtin() or false
  if M.config.ghost_text then
    if s.builtin then
      watch_builtin()
      builtin_enable(bufnr, M.is_enabled(bufnr))
      -- Hidden while a completion menu is open.
      api.nvim_create_autocmd("CompleteChanged", {
        group = group,
        buffer = bufnr,
        callback = function() builtin_enable(bufnr, false) end,
      })
      api.nvim_create_autocmd("CompleteDone", {
        group = group,
        buffer = bufnr,
        callback = function() builtin_enable(bufnr, M.is_enabled(bufnr)) end,
      })
    else
      api.nvim_create_autocmd({ "TextChangedI", "CursorMovedI" }, {
        group = group,
        buffer = bufnr,
        callback = function() schedule_request(bufnr) end,
      })
      api.nvim_create_autocmd("CompleteChanged", {
        group = group,
        buffer = bufnr,
        callback = function() clear_ghost(bufnr) end,
      })
      api.nvim_create_autocmd("CompleteDone", {
        group = group,
        buffer = bufnr,
        callback = function() vim.schedule(function() schedule_request(bufnr) end) end,
      })
      -- blink.cmp's menu.
      api.nvim_create_autocmd("User", {
        group = group,
        pattern = "BlinkCmpMenuOpen",
        callback = function()
          if api.nvim_get_current_buf() == bufnr then
            clear_ghost(bufnr)
          end
        end,
      })
      api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, {
        group = group,
        buffer = bufnr,
        callback = function()
          cancel_pending(bufnr)
          drop(bufnr)
        end,
      })
    end
  end
  api.nvim_create_autocmd("BufWipeout", {
    group = group,
    buffer = bufnr,
    callback = function()
      cancel_pending(bufnr)
      local st = states[bufnr]
      if st and st.timer then
        st.timer:close()
      end
      states[bufnr] = nil
      pcall(api.nvim_del_augroup_by_id, group)
    end,
  })
end

-- nvim-cmp's menu: hide the ghost text while it is open (one listener).
local cmp_hooked = false
local function hook_cmp()
  if cmp_hooked then
    return
  end
  local ok, cmp = pcall(require, "cmp")
  if ok and cmp and cmp.event and cmp.event.on then
    cmp_hooked = true
    cmp.event:on("menu_opened", function()
      clear_ghost(api.nvim_get_current_buf())
    end)
  end
end

--- on_attach for the locode client: ghost text, keys, status. Used by
--- setup() and by lsp/locode.lua (vim.lsp.enable).
function M.on_attach(client, bufnr)
  setup_buffer(bufnr)
  hook_cmp()
  if not status_of[client.id] then
    status_of[client.id] = { state = "loading" }
    refresh_status(client, true)
  end
  if M.config.client.on_attach then
    M.config.client.on_attach(client, bufnr)
  end
end

---------------------------------------------------------------------------
-- Starting the server
---------------------------------------------------------------------------

--- The workspace root for a buffer: the nearest folder holding one of
--- `markers` (the first marker found wins), else the current directory.
function M.root_dir(bufnr, markers)
  bufnr = resolve(bufnr)
  local name = api.nvim_buf_get_name(bufnr)
  local start = name ~= "" and vim.fn.fnamemodify(name, ":p:h") or vim.fn.getcwd()
  for _, marker in ipairs(markers or M.config.root_markers or {}) do
    local dir = start
    while dir and dir ~= "" do
      if uv.fs_stat(dir .. "/" .. marker) then
        return dir
      end
      local parent = vim.fn.fnamemodify(dir, ":h")
      if parent == dir then
        break
      end
      dir = parent
    end
  end
  return vim.fn.getcwd()
end

--- `locode/suggestionReady`: the rest of an early answer is ready. If the
--- buffer and cursor are still where it was asked for, ask again: the
--- server answers at once with the whole suggestion.
function M.on_suggestion_ready(_, result)
  local doc = result and result.textDocument
  if not doc or not result.position or not M.config.ghost_text then
    return
  end
  local bufnr = vim.uri_to_bufnr(doc.uri)
  if not api.nvim_buf_is_loaded(bufnr) or api.nvim_get_current_buf() ~= bufnr or not in_insert_mode() then
    return
  end
  if doc.version ~= nil and doc.version ~= lsp_version(bufnr) then
    return
  end
  local client = M.client(bufnr)
  local row, col = cursor_of(bufnr)
  if not client or row ~= result.position.line
    or byte_to_char(buf_line(bufnr, row), col, encoding(client)) ~= result.position.character then
    return
  end
  if builtin_active(bufnr) then
    builtin_rerequest(bufnr)
  else
    M.request(bufnr)
  end
end

--- The client capabilities locode is started with: the plugin's own ghost
--- text is an inline-completion client too, and both it and the built-in
--- path ask again on `locode/suggestionReady` (so the server may answer a
--- long suggestion early).
function M.capabilities(base)
  local caps = base or vim.lsp.protocol.make_client_capabilities()
  if M.config.ghost_text then
    caps = vim.tbl_deep_extend("force", caps, {
      textDocument = { inlineCompletion = { dynamicRegistration = false } },
      experimental = { locode = { suggestionReady = true } },
    })
  end
  return caps
end

local function reuse(client, config)
  return client.name == config.name and not is_stopped(client)
end

local function client_config(bufnr)
  local cfg = vim.tbl_extend("force", {}, M.config.client or {}, {
    name = NAME,
    cmd = M.config.cmd,
    root_dir = M.root_dir(bufnr),
    init_options = object(server_settings()),
    settings = settings_payload(),
    on_attach = M.on_attach,
  })
  cfg.handlers = vim.tbl_extend("keep", cfg.handlers or {}, {
    ["locode/suggestionReady"] = function(...) return M.on_suggestion_ready(...) end,
  })
  cfg.capabilities = M.capabilities(cfg.capabilities)
  return cfg
end

local client_id -- Neovim < 0.8: the one client, shared by all buffers.

--- Starts (or reuses) the server and attaches it to a buffer.
function M.attach(bufnr)
  bufnr = resolve(bufnr)
  if vim.bo[bufnr].buftype ~= "" then
    return nil
  end
  if vim.lsp.start then
    -- One server (one model in memory) for all roots.
    return vim.lsp.start(client_config(bufnr), { bufnr = bufnr, reuse_client = reuse })
  end
  if not client_id or not vim.lsp.get_client_by_id(client_id) then
    client_id = vim.lsp.start_client(client_config(bufnr))
    if not client_id then
      notify("could not start " .. table.concat(M.config.cmd, " "), vim.log.levels.ERROR)
      return nil
    end
  end
  vim.lsp.buf_attach_client(bufnr, client_id)
  return client_id
end

--- Config for vim.lsp.config / vim.lsp.enable (Neovim 0.11+): what
--- lsp/locode.lua returns.
function M.lsp_config()
  return {
    cmd = M.config.cmd,
    filetypes = M.config.filetypes,
    root_markers = M.config.root_markers,
    reuse_client = reuse,
    init_options = object(server_settings()),
    settings = settings_payload(),
    capabilities = M.capabilities(),
    handlers = { ["locode/suggestionReady"] = function(...) return M.on_suggestion_ready(...) end },
    on_attach = function(client, bufnr) M.on_attach(client, bufnr) end,
  }
end

--- Switches suggestions on or off: `scope` "buffer" (this buffer,
--- vim.b.locode_enabled), "filetype" (this buffer's filetype, this
--- session) or nil (everywhere: the server setting `enabled`).
function M.set_enabled(on, scope, bufnr)
  bufnr = resolve(bufnr)
  if scope == "buffer" then
    vim.b[bufnr].locode_enabled = on
  elseif scope == "filetype" then
    local ft = vim.bo[bufnr].filetype
    disabled_filetypes[ft] = (not on) or nil
    -- A buffer-level choice of the same filetype gives way.
    for _, b in ipairs(api.nvim_list_bufs()) do
      if api.nvim_buf_is_loaded(b) and vim.bo[b].filetype == ft then
        vim.b[b].locode_enabled = nil
      end
    end
  elseif scope == nil or scope == "" or scope == "global" then
    M.configure({ enabled = on })
  else
    notify("unknown scope " .. tostring(scope) .. " (buffer, filetype or none)", vim.log.levels.ERROR)
    return
  end
  for b, s in pairs(states) do
    if api.nvim_buf_is_valid(b) and s.attached then
      if s.builtin then
        builtin_enable(b, M.is_enabled(b))
      elseif not M.is_enabled(b) then
        cancel_pending(b)
        drop(b)
      end
    end
  end
  pcall(vim.cmd, "redrawstatus")
end

---------------------------------------------------------------------------
-- Explain / refactor (workspace/executeCommand)
---------------------------------------------------------------------------

-- LSP range of lines line1..line2 (1-based, inclusive); in charwise visual
-- mode the exact selection.
local function range_of(bufnr, client, line1, line2)
  local enc = encoding(client)
  local vs, ve = api.nvim_buf_get_mark(bufnr, "<"), api.nvim_buf_get_mark(bufnr, ">")
  if vim.fn.visualmode() == "v" and vs[1] == line1 and ve[1] == line2 then
    local last = buf_line(bufnr, line2 - 1)
    local ecol = math.min(ve[2] + 1, #last)
    if vim.o.selection == "exclusive" then
      ecol = ve[2]
    end
    return {
      start = { line = line1 - 1, character = byte_to_char(buf_line(bufnr, line1 - 1), vs[2], enc) },
      ["end"] = { line = line2 - 1, character = byte_to_char(last, ecol, enc) },
    }
  end
  local last = buf_line(bufnr, line2 - 1)
  return {
    start = { line = line1 - 1, character = 0 },
    ["end"] = { line = line2 - 1, character = byte_to_char(last, #last, enc) },
  }
end

local function show_markdown(text, title)
  local lines = vim.split(text, "\n", { plain = true })
  if title then
    table.insert(lines, 1, "# " .. title)
    table.insert(lines, 2, "")
  end
  vim.lsp.util.open_floating_preview(lines, "markdown", {
    border = "rounded",
    max_width = math.max(40, math.floor(vim.o.columns * 0.6)),
    max_height = math.max(10, math.floor(vim.o.lines * 0.6)),
    focus_id = "locode_explain",
  })
end

local function execute(bufnr, command, arg, on_result)
  local client = M.client(bufnr)
  if not client then
    notify("not attached to this buffer", vim.log.levels.WARN)
    return
  end
  c_request(client, "workspace/executeCommand", { command = command, arguments = { arg } }, function(err, result)
    if err then
      notify(command .. ": " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      return
    end
    on_result(client, result)
  end, bufnr)
end

local function handle_refactor_result(client, result)
  if type(result) == "table" and (result.changes or result.documentChanges) then
    vim.lsp.util.apply_workspace_edit(result, encoding(client))
  elseif type(result) == "string" and result ~= "" then
    show_markdown(result, "locode: refactor")
  end
  -- nil: the server applied the edit itself (workspace/applyEdit).
end

--- Explains lines line1..line2 in a floating window.
function M.explain(line1, line2, bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local client = M.client(bufnr)
  if not client then
    notify("not attached to this buffer", vim.log.levels.WARN)
    return
  end
  local arg = { uri = vim.uri_from_bufnr(bufnr), range = range_of(bufnr, client, line1, line2) }
  notify("explaining…")
  execute(bufnr, "locode.explain", arg, function(_, result)
    if type(result) == "table" then
      result = result.value or result.markdown or vim.inspect(result)
    end
    if type(result) ~= "string" or result == "" then
      notify("no explanation", vim.log.levels.WARN)
      return
    end
    show_markdown(result)
  end)
end

--- Rewrites lines line1..line2 following `instruction` (asked when nil).
function M.refactor(line1, line2, instruction, cloud, bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local client = M.client(bufnr)
  if not client then
    notify("not attached to this buffer", vim.log.levels.WARN)
    return
  end
  local range = range_of(bufnr, client, line1, line2)
  local function run(instr)
    if not instr or instr == "" then
      return
    end
    local arg = { uri = vim.uri_from_bufnr(bufnr), range = range, instruction = instr }
    notify("refactoring…")
    execute(bufnr, cloud and "locode.refactorCloud" or "locode.refactor", arg, handle_refactor_result)
  end
  if instruction and instruction ~= "" then
    run(instruction)
  else
    vim.ui.input({ prompt = "locode refactor: " }, run)
  end
end

--- Status of the server: {state = "loading"|"ready"|"failed", ...}.
function M.status(bufnr)
  local client = M.client(bufnr) or get_clients()[1]
  if not client then
    notify("not running")
    return
  end
  c_request(client, "locode/status", nil, function(err, result)
    if err then
      notify(err.message or "status failed", vim.log.levels.ERROR)
      return
    end
    status_of[client.id] = result
    local msg = result.state
    if result.model then
      msg = msg .. ": " .. tostring(result.model.path or "") .. " (" .. tostring(result.model.family or "") .. ")"
    elseif result.error then
      msg = msg .. ": " .. result.error
    end
    notify(msg .. (M.is_enabled(0) and "" or " [disabled here]"))
  end)
end

--- The server's status now (waits up to `timeout_ms`), or nil and an error.
function M.status_sync(client, timeout_ms)
  local resp, err = c_request_sync(client, "locode/status", nil, timeout_ms or 2000)
  if not resp then
    return nil, tostring(err)
  end
  if resp.err then
    return nil, resp.err.message or vim.inspect(resp.err)
  end
  status_of[client.id] = resp.result
  return resp.result
end

local function scope_complete()
  return { "buffer", "filetype" }
end

--- Creates the user commands (plugin/locode.lua does, at start-up).
function M.create_commands()
  local cmd = api.nvim_create_user_command
  cmd("LocodeExplain", function(o) M.explain(o.line1, o.line2) end,
    { range = true, desc = "locode: explain the selected code" })
  cmd("LocodeRefactor", function(o) M.refactor(o.line1, o.line2, o.args, false) end,
    { range = true, nargs = "*", desc = "locode: rewrite the selection following an instruction" })
  cmd("LocodeRefactorCloud", function(o) M.refactor(o.line1, o.line2, o.args, true) end,
    { range = true, nargs = "*", desc = "locode: refactor with the cloud model" })
  cmd("LocodeEnable", function(o) M.set_enabled(true, o.args) end,
    { nargs = "?", complete = scope_complete, desc = "locode: offer suggestions (everywhere, [buffer] or [filetype])" })
  cmd("LocodeDisable", function(o) M.set_enabled(false, o.args) end,
    { nargs = "?", complete = scope_complete, desc = "locode: stop suggestions (everywhere, [buffer] or [filetype])" })
  cmd("LocodeToggle", function(o)
    local scope = o.args ~= "" and o.args or nil
    local on
    if scope == nil then
      on = M.config.settings.enabled == false
    else
      on = not M.is_enabled(0)
    end
    M.set_enabled(on, scope)
  end, { nargs = "?", complete = scope_complete, desc = "locode: toggle suggestions" })
  cmd("LocodeStatus", function() M.status() end, { desc = "locode: model state" })
  cmd("LocodeSuggest", function() M.request(0, true) end, { desc = "locode: request a suggestion now" })
end

--- Configures the plugin: starts locode for `filetypes` (unless
--- autostart = false) and wires ghost text, keymaps and commands. See
--- `defaults` above and `:help locode-options`. Can be called again.
function M.setup(opts)
  opts = opts or {}
  -- Buffers attached before: their keys and ghost text go with the old
  -- options, and they are wired again below.
  for b, s in pairs(states) do
    if s.attached and api.nvim_buf_is_valid(b) then
      cancel_pending(b)
      drop(b)
      keys_off(b)
    end
  end
  M.config = vim.tbl_deep_extend("force", vim.deepcopy(defaults), opts)
  for _, key in ipairs({ "filetypes", "cmd", "root_markers" }) do
    if opts[key] then
      M.config[key] = opts[key] -- a list replaces, never merges
    end
  end
  api.nvim_set_hl(0, "LocodeGhostText", { link = "Comment", default = true })
  M.create_commands()
  api.nvim_clear_autocmds({ group = augroup })
  if M.config.autostart then
    api.nvim_create_autocmd("FileType", {
      group = augroup,
      pattern = M.config.filetypes,
      callback = function(args) M.attach(args.buf) end,
    })
  end
  local wanted = {}
  for _, ft in ipairs(M.config.filetypes) do
    wanted[ft] = true
  end
  for _, b in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(b) then
      local s = states[b]
      if s and s.attached then
        setup_buffer(b)
      elseif M.config.autostart and wanted[vim.bo[b].filetype] then
        M.attach(b) -- open before setup() ran
      end
    end
  end
end

return M
