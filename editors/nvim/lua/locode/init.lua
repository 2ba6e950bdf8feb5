-- locode.nvim: offline AI code completion from the locode language server.
--
--   require("locode").setup({ cmd = { "/path/to/locode", "serve" } })
--
-- Neovim >= 0.9 is the target; setup() also runs on 0.7.2 (start_client +
-- buf_attach_client, ghost text drawn with extmarks). On Neovim 0.12+, which
-- has vim.lsp.inline_completion, the built-in ghost text is used instead of
-- this plugin's own (option `ghost_text`).

local api = vim.api
local uv = vim.uv or vim.loop

local M = {}

local NAME = "locode"
local ns = api.nvim_create_namespace("locode_ghost_text")

local defaults = {
  -- Command that starts the server (LSP on stdio).
  cmd = { "locode", "serve" },
  -- Filetypes the server is started for.
  filetypes = {
    "python", "rust", "c", "cpp", "go", "java", "javascript", "javascriptreact",
    "typescript", "typescriptreact", "lua", "ruby", "php", "sh", "bash", "zsh",
    "cs", "kotlin", "swift", "scala", "haskell", "ocaml", "zig", "html", "css",
    "json", "yaml", "toml", "markdown", "sql",
  },
  -- Files whose directory is the workspace root (nearest ancestor); else cwd.
  root_markers = { ".git" },
  -- Server settings (README "Configuration"): sent as initializationOptions
  -- and with workspace/didChangeConfiguration, e.g. { threads = 4, maxLines = 6 }.
  settings = {},
  -- Ghost text: "auto" (vim.lsp.inline_completion on 0.12+, else this
  -- plugin's own), "builtin", "plugin", or false (completion items only).
  ghost_text = "auto",
  -- Milliseconds of quiet typing before a suggestion is requested.
  debounce_ms = 75,
  -- Insert-mode keymaps; set one to false to leave it unmapped. `accept`
  -- falls back to the key itself when no suggestion is shown.
  keymaps = {
    accept = "<Tab>",
    accept_word = "<M-Right>",
    accept_line = "<M-Down>",
    dismiss = "<C-]>",
    next = "<M-]>",
    prev = "<M-[>",
  },
  -- Set 'omnifunc' to the LSP one in attached buffers (<C-x><C-o> completes
  -- through textDocument/completion).
  omnifunc = true,
  -- Extra fields for the client config (on_attach, capabilities, flags, ...).
  client = {},
}

M.config = vim.deepcopy(defaults)

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

--- The locode client attached to a buffer (default: current), or nil.
function M.client(bufnr)
  if bufnr == nil or bufnr == 0 then
    bufnr = api.nvim_get_current_buf()
  end
  return get_clients(bufnr)[1]
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

---------------------------------------------------------------------------
-- Settings
---------------------------------------------------------------------------

-- An empty Lua table encodes as a JSON array; settings must be an object.
local function object(t)
  t = vim.deepcopy(t or {})
  if next(t) == nil then
    return vim.empty_dict()
  end
  return t
end

local function settings_payload()
  return { locode = object(M.config.settings) }
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

---------------------------------------------------------------------------
-- Ghost text drawn by this plugin (Neovim < 0.12, or ghost_text = "plugin")
---------------------------------------------------------------------------

-- bufnr -> { timer, req = {client, id}, items, index, row, col, tick, shown }
local states = {}

local function state(bufnr)
  local s = states[bufnr]
  if not s then
    s = {}
    states[bufnr] = s
  end
  return s
end

local function clear_ghost(bufnr)
  local s = states[bufnr]
  if s then
    s.shown = nil
  end
  if api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  end
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

--- Turns an InlineCompletionItem into {text, row, col, end_row, end_col}
--- (byte positions) plus the part still to be shown after the cursor.
local function normalize_item(bufnr, client, raw, row, col)
  local text = raw.insertText
  if type(text) == "table" then
    text = text.value -- a snippet: shown and inserted as plain text
  end
  if type(text) ~= "string" or text == "" then
    return nil
  end
  local enc = encoding(client)
  local srow, scol, erow, ecol = row, col, row, col
  if raw.range then
    srow = raw.range.start.line
    scol = char_to_byte(buf_line(bufnr, srow), raw.range.start.character, enc)
    erow = raw.range["end"].line
    ecol = char_to_byte(buf_line(bufnr, erow), raw.range["end"].character, enc)
  end
  -- Text between the range start and the cursor is already typed: skip it.
  local visible = text
  if srow == row and scol < col then
    local typed = buf_line(bufnr, row):sub(scol + 1, col)
    if text:sub(1, #typed) ~= typed then
      return nil
    end
    visible = text:sub(#typed + 1)
  end
  if visible == "" then
    return nil
  end
  return { text = text, visible = visible, srow = srow, scol = scol, erow = erow, ecol = ecol }
end

local function render(bufnr, item)
  api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  local s = state(bufnr)
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
end

local function cursor_of(bufnr)
  local win = api.nvim_get_current_win()
  if api.nvim_win_get_buf(win) ~= bufnr then
    return nil
  end
  local pos = api.nvim_win_get_cursor(win)
  return pos[1] - 1, pos[2]
end

--- Requests a suggestion at the cursor now (cancelling any pending one).
--- `invoked` marks an explicit request (triggerKind Invoked).
function M.request(bufnr, invoked)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local client = M.client(bufnr)
  if not client then
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
    if err or not result or not api.nvim_buf_is_valid(bufnr) then
      return
    end
    -- Stale: the buffer or cursor moved on meanwhile.
    if api.nvim_buf_get_changedtick(bufnr) ~= tick then
      return
    end
    local r, c = cursor_of(bufnr)
    if r ~= row or c ~= col then
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
      clear_ghost(bufnr)
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
  local row, col = cursor_of(bufnr)
  -- Keep showing a suggestion the cursor still sits at (e.g. after a
  -- partial accept); otherwise it is gone.
  if not (s.shown and row == s.row and col == s.col and api.nvim_buf_get_changedtick(bufnr) == s.tick) then
    clear_ghost(bufnr)
  end
  cancel_pending(bufnr)
  if not s.timer then
    s.timer = uv.new_timer()
  end
  s.timer:start(M.config.debounce_ms, 0, vim.schedule_wrap(function()
    if api.nvim_buf_is_valid(bufnr) and api.nvim_get_current_buf() == bufnr
      and api.nvim_get_mode().mode:sub(1, 1) == "i" then
      M.request(bufnr)
    end
  end))
end

--- True while a suggestion request of this plugin is in flight.
function M.pending(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local s = states[bufnr]
  return s ~= nil and s.req ~= nil
end

--- The suggestion currently shown in a buffer (plugin ghost text), or nil.
function M.current(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local s = states[bufnr]
  return s and s.shown or nil
end

-- Inserts `text` (part of the shown item) at the cursor, or the whole item
-- over its range when `text` is nil.
local function insert(bufnr, item, text)
  local s = state(bufnr)
  local lines
  if text == nil then
    lines = vim.split(item.text, "\n", { plain = true })
    api.nvim_buf_set_text(bufnr, item.srow, item.scol, item.erow, item.ecol, lines)
    local row = item.srow + #lines - 1
    local col = (#lines == 1 and item.scol or 0) + #lines[#lines]
    api.nvim_win_set_cursor(0, { row + 1, col })
    clear_ghost(bufnr)
    return
  end
  lines = vim.split(text, "\n", { plain = true })
  api.nvim_buf_set_text(bufnr, s.row, s.col, s.row, s.col, lines)
  local row = s.row + #lines - 1
  local col = (#lines == 1 and s.col or 0) + #lines[#lines]
  api.nvim_win_set_cursor(0, { row + 1, col })
  local rest = item.visible:sub(#text + 1)
  if rest == "" then
    clear_ghost(bufnr)
    return
  end
  -- Keep showing the rest at the new cursor.
  local remaining = { text = rest, visible = rest, srow = row, scol = col, erow = row, ecol = col }
  s.items = { remaining }
  s.index, s.row, s.col, s.tick = 1, row, col, api.nvim_buf_get_changedtick(bufnr)
  render(bufnr, remaining)
end

local function feed(key)
  -- "i": ahead of keys already typed, so the fallback keeps its place.
  api.nvim_feedkeys(api.nvim_replace_termcodes(key, true, false, true), "ni", false)
end

local function builtin_active(bufnr)
  local s = states[bufnr]
  return s and s.builtin
end

--- Accepts the whole suggestion. Returns true when there was one.
function M.accept(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  if builtin_active(bufnr) then
    return vim.lsp.inline_completion.get({ bufnr = bufnr }) and true or false
  end
  local item = M.current(bufnr)
  if not item then
    return false
  end
  insert(bufnr, item, nil)
  return true
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

-- Built-in inline completion (0.12+): accepts the part of its current item
-- that `pick` selects, typed at the cursor. Returns false when none is shown.
local function builtin_partial(bufnr, pick)
  return vim.lsp.inline_completion.get({
    bufnr = bufnr,
    on_accept = function(item)
      local text = item.insert_text
      if type(text) ~= "string" then
        text = text and text.value or ""
      end
      local pos = api.nvim_win_get_cursor(0)
      local row, col = pos[1] - 1, pos[2]
      -- Skip what is already typed between the item's start and the cursor.
      local r = item.range
      local srow = r and (r.start and (r.start.row or r.start[1])) or (type(r) == "table" and r[1]) or nil
      local scol = r and (r.start and (r.start.col or r.start[2])) or (type(r) == "table" and r[2]) or nil
      if srow == row and scol and scol < col then
        local typed = buf_line(bufnr, row):sub(scol + 1, col)
        if text:sub(1, #typed) == typed then
          text = text:sub(#typed + 1)
        end
      end
      local part = pick(text)
      if part == "" then
        return
      end
      local lines = vim.split(part, "\n", { plain = true })
      api.nvim_buf_set_text(bufnr, row, col, row, col, lines)
      api.nvim_win_set_cursor(0, { row + #lines, (#lines == 1 and col or 0) + #lines[#lines] })
    end,
  }) and true or false
end

--- Accepts the next word of the suggestion (with leading blanks).
function M.accept_word(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  if builtin_active(bufnr) then
    return builtin_partial(bufnr, first_word)
  end
  local item = M.current(bufnr)
  if not item then
    return false
  end
  insert(bufnr, item, first_word(item.visible))
  return true
end

--- Accepts the suggestion up to the end of its current line.
function M.accept_line(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  if builtin_active(bufnr) then
    return builtin_partial(bufnr, first_line)
  end
  local item = M.current(bufnr)
  if not item then
    return false
  end
  insert(bufnr, item, first_line(item.visible))
  return true
end

--- Hides the suggestion and cancels the pending request.
function M.dismiss(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  if builtin_active(bufnr) then
    -- The built-in one has no dismiss: toggling clears its ghost text.
    vim.lsp.inline_completion.enable(false, { bufnr = bufnr })
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    return true
  end
  local shown = M.current(bufnr) ~= nil
  cancel_pending(bufnr)
  clear_ghost(bufnr)
  return shown
end

--- Shows the next (count = 1) or previous (-1) candidate; requests one when
--- none is shown.
function M.next(bufnr, count)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  count = count or 1
  if builtin_active(bufnr) then
    vim.lsp.inline_completion.select({ bufnr = bufnr, count = count })
    return
  end
  local s = state(bufnr)
  if not s.shown or not s.items or #s.items < 2 then
    M.request(bufnr, true)
    return
  end
  s.index = (s.index - 1 + count) % #s.items + 1
  render(bufnr, s.items[s.index])
end

local function set_keymaps(bufnr)
  local k = M.config.keymaps or {}
  local function map(lhs, fn, desc)
    if lhs then
      vim.keymap.set("i", lhs, fn, { buffer = bufnr, silent = true, desc = "locode: " .. desc })
    end
  end
  map(k.accept, function()
    if not M.accept(bufnr) then
      feed(k.accept)
    end
  end, "accept suggestion")
  map(k.accept_word, function()
    if not M.accept_word(bufnr) then
      feed(k.accept_word)
    end
  end, "accept next word")
  map(k.accept_line, function()
    if not M.accept_line(bufnr) then
      feed(k.accept_line)
    end
  end, "accept line")
  map(k.dismiss, function()
    if not M.dismiss(bufnr) then
      feed(k.dismiss)
    end
  end, "dismiss suggestion")
  map(k.next, function() M.next(bufnr, 1) end, "next suggestion")
  map(k.prev, function() M.next(bufnr, -1) end, "previous suggestion")
end

local augroup = api.nvim_create_augroup("locode", { clear = true })

local function use_builtin()
  local g = M.config.ghost_text
  if g == "builtin" or g == "auto" then
    return vim.lsp.inline_completion ~= nil and vim.lsp.inline_completion.enable ~= nil
  end
  return false
end

local function on_attach(client, bufnr)
  local s = state(bufnr)
  if s.attached then
    return
  end
  s.attached = true
  if M.config.omnifunc then
    vim.bo[bufnr].omnifunc = "v:lua.vim.lsp.omnifunc"
  end
  if M.config.ghost_text then
    if use_builtin() then
      s.builtin = true
      vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    else
      api.nvim_create_autocmd({ "TextChangedI", "CursorMovedI" }, {
        group = augroup,
        buffer = bufnr,
        callback = function() schedule_request(bufnr) end,
      })
      api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, {
        group = augroup,
        buffer = bufnr,
        callback = function()
          cancel_pending(bufnr)
          clear_ghost(bufnr)
        end,
      })
    end
    set_keymaps(bufnr)
  end
  api.nvim_create_autocmd("BufWipeout", {
    group = augroup,
    buffer = bufnr,
    callback = function()
      cancel_pending(bufnr)
      local st = states[bufnr]
      if st and st.timer then
        st.timer:close()
      end
      states[bufnr] = nil
    end,
  })
  if M.config.client.on_attach then
    M.config.client.on_attach(client, bufnr)
  end
end

---------------------------------------------------------------------------
-- Starting the server
---------------------------------------------------------------------------

local function root_dir(bufnr)
  local name = api.nvim_buf_get_name(bufnr)
  local dir = name ~= "" and vim.fn.fnamemodify(name, ":p:h") or vim.fn.getcwd()
  for _, marker in ipairs(M.config.root_markers or {}) do
    local found = vim.fn.finddir(marker, dir .. ";")
    if found == "" then
      found = vim.fn.findfile(marker, dir .. ";")
    end
    if found ~= "" then
      return vim.fn.fnamemodify(found, ":p:h:h"):gsub("/$", "")
    end
  end
  return vim.fn.getcwd()
end

--- `locode/suggestionReady`: the rest of an early answer is ready. If the
--- buffer and cursor are still where it was asked for, ask again: the
--- server answers at once with the whole suggestion.
local function on_suggestion_ready(_, result)
  local doc = result and result.textDocument
  -- (Neovim's own inline completion asks by itself, on its own schedule.)
  if not doc or not result.position or use_builtin() or M.config.ghost_text == false then
    return
  end
  local bufnr = vim.uri_to_bufnr(doc.uri)
  if not api.nvim_buf_is_loaded(bufnr) or api.nvim_get_current_buf() ~= bufnr
    or api.nvim_get_mode().mode:sub(1, 1) ~= "i" then
    return
  end
  local versions = vim.lsp.util.buf_versions or {}
  if doc.version ~= (versions[bufnr] or api.nvim_buf_get_changedtick(bufnr)) then
    return
  end
  local client = M.client(bufnr)
  local row, col = cursor_of(bufnr)
  if not client or row ~= result.position.line
    or byte_to_char(buf_line(bufnr, row), col, encoding(client)) ~= result.position.character then
    return
  end
  M.request(bufnr)
end

local function client_config(bufnr)
  local cfg = vim.tbl_extend("force", {}, M.config.client or {}, {
    name = NAME,
    cmd = M.config.cmd,
    root_dir = root_dir(bufnr),
    init_options = object(M.config.settings),
    settings = settings_payload(),
    on_attach = on_attach,
  })
  cfg.handlers = vim.tbl_extend("keep", cfg.handlers or {}, { ["locode/suggestionReady"] = on_suggestion_ready })
  -- The plugin's own ghost text asks again on suggestionReady, so the server
  -- may answer early; Neovim's built-in inline completion does not.
  if not use_builtin() and M.config.ghost_text ~= false then
    cfg.capabilities = vim.tbl_deep_extend("force", cfg.capabilities or vim.lsp.protocol.make_client_capabilities(),
      { experimental = { locode = { suggestionReady = true } } })
  end
  return cfg
end

local client_id -- Neovim 0.7: the one client, shared by all buffers.

--- Starts (or reuses) the server and attaches it to a buffer.
function M.attach(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  if vim.bo[bufnr].buftype ~= "" then
    return nil
  end
  if vim.lsp.start then
    return vim.lsp.start(client_config(bufnr), {
      bufnr = bufnr,
      -- One server (one model in memory) for all roots.
      reuse_client = function(client, config) return client.name == config.name and not is_stopped(client) end,
    })
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
    local msg = result.state
    if result.model then
      msg = msg .. ": " .. tostring(result.model.path or "") .. " (" .. tostring(result.model.family or "") .. ")"
    elseif result.error then
      msg = msg .. ": " .. result.error
    end
    local enabled = M.config.settings.enabled
    notify(msg .. (enabled == false and " [disabled]" or ""))
  end)
end

local function create_commands()
  local cmd = api.nvim_create_user_command
  cmd("LocodeExplain", function(o) M.explain(o.line1, o.line2) end,
    { range = true, desc = "locode: explain the selected code" })
  cmd("LocodeRefactor", function(o) M.refactor(o.line1, o.line2, o.args, false) end,
    { range = true, nargs = "*", desc = "locode: rewrite the selection following an instruction" })
  cmd("LocodeRefactorCloud", function(o) M.refactor(o.line1, o.line2, o.args, true) end,
    { range = true, nargs = "*", desc = "locode: refactor with the cloud model" })
  cmd("LocodeEnable", function() M.configure({ enabled = true }) end, { desc = "locode: offer completions" })
  cmd("LocodeDisable", function()
    M.configure({ enabled = false })
    for b in pairs(states) do
      clear_ghost(b)
    end
  end, { desc = "locode: stop offering completions" })
  cmd("LocodeToggle", function()
    if M.config.settings.enabled == false then
      vim.cmd("LocodeEnable")
    else
      vim.cmd("LocodeDisable")
    end
  end, { desc = "locode: toggle completions" })
  cmd("LocodeStatus", function() M.status() end, { desc = "locode: model state" })
  cmd("LocodeSuggest", function() M.request(0, true) end, { desc = "locode: request a suggestion now" })
end

--- Configures the plugin: starts locode for `filetypes` and wires ghost text,
--- keymaps and commands. See `defaults` above for the options.
function M.setup(opts)
  opts = opts or {}
  M.config = vim.tbl_deep_extend("force", vim.deepcopy(defaults), opts)
  if opts.filetypes then
    M.config.filetypes = opts.filetypes -- a list replaces, never merges
  end
  if opts.cmd then
    M.config.cmd = opts.cmd
  end
  api.nvim_set_hl(0, "LocodeGhostText", { link = "Comment", default = true })
  create_commands()
  api.nvim_clear_autocmds({ group = augroup })
  api.nvim_create_autocmd("FileType", {
    group = augroup,
    pattern = M.config.filetypes,
    callback = function(args) M.attach(args.buf) end,
  })
  -- Buffers already open when setup() runs.
  local wanted = {}
  for _, ft in ipairs(M.config.filetypes) do
    wanted[ft] = true
  end
  for _, b in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(b) and wanted[vim.bo[b].filetype] then
      M.attach(b)
    end
  end
end

return M
