-- Headless Neovim test: the real locode server and the real model, driven
-- through Neovim's built-in LSP client (the 0.7 API: vim.lsp.start_client,
-- buf_attach_client, client.request_sync), then through this plugin.
--
--   LOCODE_BIN=target/release/locode nvim --headless -u NONE -i NONE \
--     -c "luafile editors/nvim/test/test_locode.lua"
--
-- Prints one line per test and finally "N passed, M failed"; exits non-zero
-- when anything failed.

local api = vim.api

local BIN = os.getenv("LOCODE_BIN")
local PLUGIN_DIR = os.getenv("LOCODE_NVIM_PLUGIN_DIR")
  or vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h:h")
local TIMEOUT = tonumber(os.getenv("LOCODE_TEST_TIMEOUT_MS") or "") or 60000

local passed, failed = 0, 0

-- The test targets Neovim 0.7 (dot-call client methods); from 0.11 on they
-- are methods (`client:request_sync`), so newer versions run it too.
local has_011 = vim.fn.has("nvim-0.11") == 1
local function call(client, name, ...)
  if has_011 then
    return client[name](client, ...)
  end
  return client[name](...)
end
local function active_clients()
  return (vim.lsp.get_clients or vim.lsp.get_active_clients)()
end

local function out(s)
  io.stdout:write(s .. "\n")
  io.stdout:flush()
end

local function finish()
  out(string.format("%d passed, %d failed", passed, failed))
  for _, c in pairs(active_clients()) do
    call(c, "stop", true)
  end
  vim.wait(2000, function() return #active_clients() == 0 end, 50)
  if failed == 0 then
    vim.cmd("qall!")
  else
    vim.cmd("cquit 1")
  end
end

local function fatal(msg)
  out("FAIL setup: " .. msg)
  failed = failed + 1
  finish()
end

-- A failed test also skips those that depend on it.
local broken = {}
local function test(name, deps, fn)
  for _, d in ipairs(deps) do
    if broken[d] then
      failed = failed + 1
      broken[name] = true
      out("FAIL " .. name .. ": skipped, needs " .. d)
      return
    end
  end
  local t0 = vim.loop.hrtime()
  local ok, err = xpcall(fn, debug.traceback)
  local ms = math.floor((vim.loop.hrtime() - t0) / 1e6)
  if ok then
    passed = passed + 1
    out(string.format("ok %s (%d ms)", name, ms))
  else
    failed = failed + 1
    broken[name] = true
    out(string.format("FAIL %s (%d ms): %s", name, ms, tostring(err)))
  end
end

local function check(cond, msg, ...)
  if not cond then
    error(string.format(msg, ...), 2)
  end
end

local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s:\n  got:  %s\n  want: %s", what, vim.inspect(got), vim.inspect(want)), 2)
  end
end

local function buf_text(bufnr)
  local text = table.concat(api.nvim_buf_get_lines(bufnr, 0, -1, true), "\n")
  if vim.bo[bufnr].eol then
    text = text .. "\n"
  end
  return text
end

if not BIN or BIN == "" then
  fatal("set LOCODE_BIN to the locode binary")
  return
end
if vim.fn.executable(BIN) ~= 1 then
  fatal("LOCODE_BIN is not executable: " .. BIN)
  return
end

-- Headless Neovim stays in Normal mode, where the cursor cannot sit after the
-- last character; 'virtualedit' lets it, as in Insert mode.
vim.o.virtualedit = "onemore"

local tmp = vim.fn.tempname()
vim.fn.mkdir(tmp, "p")

-- A request answered within the timeout, or an error naming what happened.
local function request(client, method, params, bufnr)
  local resp, err = call(client, "request_sync", method, params, TIMEOUT, bufnr)
  check(resp ~= nil, "%s: no response (%s)", method, tostring(err))
  check(resp.err == nil, "%s: error %s", method, vim.inspect(resp.err))
  return resp.result
end

local function wait_ready(client)
  check(vim.wait(TIMEOUT, function() return client.initialized end, 10), "client did not initialize")
  local deadline = vim.loop.now() + TIMEOUT
  local last
  while vim.loop.now() < deadline do
    last = request(client, "locode/status", nil)
    if last.state == "ready" then
      return last
    end
    check(last.state ~= "failed", "model failed to load: %s", tostring(last.error))
    vim.wait(100)
  end
  error("model not ready after " .. TIMEOUT .. " ms: " .. vim.inspect(last))
end

local SOURCE = {
  "def add(a, b):",
  "    return a + ",
  "",
  "",
  "print(add(1, 2))",
}

local function python_buffer(name, lines)
  local bufnr = api.nvim_create_buf(true, false)
  api.nvim_buf_set_name(bufnr, tmp .. "/" .. name)
  api.nvim_buf_set_lines(bufnr, 0, -1, true, lines)
  vim.bo[bufnr].filetype = "python"
  api.nvim_set_current_buf(bufnr)
  return bufnr
end

---------------------------------------------------------------------------
-- Part 1: the native client alone
---------------------------------------------------------------------------

local client_id, client, bufnr

test("start the server with vim.lsp.start_client and attach", {}, function()
  client_id = vim.lsp.start_client({
    name = "locode",
    cmd = { BIN, "serve" },
    root_dir = tmp,
    init_options = { maxLines = 8 },
  })
  check(client_id, "start_client returned nil")
  bufnr = python_buffer("add.py", SOURCE)
  check(vim.lsp.buf_attach_client(bufnr, client_id), "buf_attach_client failed")
  local ok = vim.wait(TIMEOUT, function()
    client = vim.lsp.get_client_by_id(client_id)
    return client ~= nil and client.initialized == true
  end, 20)
  check(ok, "client did not initialize")
  check(vim.lsp.buf_is_attached(bufnr, client_id), "buffer not attached")
  check(client.server_capabilities.inlineCompletionProvider, "no inlineCompletionProvider in %s",
    vim.inspect(client.server_capabilities))
  eq(client.server_capabilities.textDocumentSync.change, 2, "sync kind (2 = incremental)")
  if client.resolved_capabilities then -- 0.7: what the client will actually send
    eq(client.resolved_capabilities.text_document_did_change, 2, "client sync kind (2 = incremental)")
  end
end)

test("model loads (locode/status)", { "start the server with vim.lsp.start_client and attach" }, function()
  local st = wait_ready(client)
  check(type(st.model) == "table", "status has no model: %s", vim.inspect(st))
end)

local completion_item
test("textDocument/completion after `return a + `", { "model loads (locode/status)" }, function()
  api.nvim_win_set_cursor(0, { 2, #SOURCE[2] })
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  eq(params.position.character, #SOURCE[2], "cursor position sent")
  params.context = { triggerKind = 1 }
  local result = request(client, "textDocument/completion", params, bufnr)
  local items = result and (result.items or result) or {}
  check(#items >= 1, "no completion items: %s", vim.inspect(result))
  completion_item = items[1]
  local te = completion_item.textEdit
  check(te and type(te.newText) == "string", "item has no textEdit: %s", vim.inspect(completion_item))
  check(te.newText:find("b", 1, true), "newText %q does not contain `b`", te.newText)
  eq(te.range["end"].line, 1, "textEdit ends on the cursor line")
  eq(te.range["end"].character, #SOURCE[2], "textEdit ends at the cursor")
  out("   completion: " .. vim.inspect(te.newText))
end)

test("apply the completion with vim.lsp.util.apply_text_edits", { "textDocument/completion after `return a + `" },
  function()
    local te = completion_item.textEdit
    local before = buf_text(bufnr)
    vim.lsp.util.apply_text_edits({ te }, bufnr, client.offset_encoding)
    -- The expected text, computed independently: newText replaces the range
    -- (the word before the cursor, empty here) on line 2.
    local lines = vim.split(before, "\n", { plain = true })
    local line = lines[2]
    lines[2] = line:sub(1, te.range.start.character) .. te.newText .. line:sub(te.range["end"].character + 1)
    local want = table.concat(lines, "\n")
    eq(buf_text(bufnr), want, "buffer after apply_text_edits")
    check(api.nvim_buf_get_lines(bufnr, 1, 2, true)[1]:match("^    return a %+ .*b"),
      "line 2 is %q", api.nvim_buf_get_lines(bufnr, 1, 2, true)[1])
    local state = request(client, "locode/documentState", { uri = vim.uri_from_bufnr(bufnr) }, bufnr)
    eq(state.text, buf_text(bufnr), "server text after apply_text_edits")
  end)

local function inline_at(row, col)
  api.nvim_win_set_cursor(0, { row, col })
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  eq(params.position.character, col, "cursor position sent")
  params.context = { triggerKind = 1 }
  local result = request(client, "textDocument/inlineCompletion", params, bufnr)
  return result and (result.items or result) or {}
end

test("textDocument/inlineCompletion through the client", { "model loads (locode/status)" }, function()
  -- Back to `    return a + ` with nvim_buf_set_lines (an incremental change).
  api.nvim_buf_set_lines(bufnr, 1, 2, true, { SOURCE[2] })
  local items = inline_at(2, #SOURCE[2])
  check(#items >= 1, "inline completion returned no items")
  local text = items[1].insertText
  check(type(text) == "string" and text ~= "", "empty insertText: %s", vim.inspect(items[1]))
  check(text:find("b", 1, true), "insertText %q does not contain `b`", text)
  out("   inline: " .. vim.inspect(text))
end)

test("incremental sync: documentState equals the buffer after edits", { "model loads (locode/status)" }, function()
  local uri = vim.uri_from_bufnr(bufnr)
  local function same(what)
    local state = request(client, "locode/documentState", { uri = uri }, bufnr)
    eq(state.text, buf_text(bufnr), "server text " .. what)
    if vim.lsp.util.buf_versions and vim.lsp.util.buf_versions[bufnr] then
      eq(state.version, vim.lsp.util.buf_versions[bufnr], "server version " .. what)
    end
  end
  api.nvim_buf_set_lines(bufnr, 0, 0, true, { "import math", "# café ☕ 𝄞 naïve" })
  same("after inserting lines at the top")
  api.nvim_buf_set_lines(bufnr, 3, 4, true, { "    total = a + b", "    return total" })
  same("after replacing a line with two")
  api.nvim_buf_set_lines(bufnr, -2, -1, true, {})
  same("after deleting the last line")
  -- Inside a line, after characters that take 2 and 4 UTF-16 units.
  local line = api.nvim_buf_get_lines(bufnr, 1, 2, true)[1]
  local at = line:find("naïve", 1, true) - 1
  api.nvim_buf_set_text(bufnr, 1, at, 1, at + #"naïve", { "ok" })
  same("after nvim_buf_set_text after multi-byte characters")
  api.nvim_buf_set_lines(bufnr, 0, -1, true, SOURCE)
  same("after replacing the whole buffer")
end)

local function enabled(value)
  call(client, "notify", "workspace/didChangeConfiguration", { settings = { locode = { enabled = value, maxLines = 4 } } })
end

test("workspace/didChangeConfiguration enabled=false, then true", { "textDocument/inlineCompletion through the client" },
  function()
    enabled(false)
    local items = inline_at(2, #SOURCE[2])
    eq(#items, 0, "items while disabled (" .. vim.inspect(items) .. ")")
    enabled(true)
    items = inline_at(2, #SOURCE[2])
    check(#items == 1 and items[1].insertText:find("b", 1, true),
      "after re-enabling: %s", vim.inspect(items))
  end)

if client then
  call(client, "stop")
  vim.wait(5000, function() return call(client, "is_stopped") end, 50)
end

---------------------------------------------------------------------------
-- Part 2: the plugin (require("locode").setup) on this Neovim
---------------------------------------------------------------------------

vim.opt.runtimepath:prepend(PLUGIN_DIR)
local locode, pbuf, pclient
local server_messages = {}

test("plugin: setup() starts locode for a python buffer", {}, function()
  locode = require("locode")
  vim.lsp.handlers["window/showMessage"] = function(_, result)
    table.insert(server_messages, result)
  end
  locode.setup({
    cmd = { BIN, "serve" },
    filetypes = { "python" },
    ghost_text = "plugin", -- this plugin's own ghost text, as on Neovim < 0.12
    debounce_ms = 10,
  })
  for _, name in ipairs({ "LocodeExplain", "LocodeRefactor", "LocodeRefactorCloud", "LocodeToggle" }) do
    check(api.nvim_get_commands({})[name], "command %s missing", name)
  end
  eq(api.nvim_get_commands({}).LocodeExplain.range, ".", "LocodeExplain is a range command")
  pbuf = python_buffer("plugin.py", SOURCE) -- FileType python -> attach
  local ok = vim.wait(TIMEOUT, function()
    pclient = locode.client(pbuf)
    return pclient ~= nil
  end, 20)
  check(ok, "the plugin did not attach a locode client")
  eq(vim.bo[pbuf].omnifunc, "v:lua.vim.lsp.omnifunc", "omnifunc")
  wait_ready(pclient)
  -- e.g. "settings must be a JSON object" when {} went out as [].
  eq(#server_messages, 0, "messages from the server (" .. vim.inspect(server_messages) .. ")")
end)

local function suggest()
  api.nvim_win_set_cursor(0, { 2, #SOURCE[2] })
  locode.request(pbuf, true)
  check(locode.pending(pbuf), "no request in flight")
  check(vim.wait(TIMEOUT, function() return not locode.pending(pbuf) end, 10), "no answer")
  return locode.current(pbuf)
end

test("plugin: ghost text extmark and accept", { "plugin: setup() starts locode for a python buffer" }, function()
  local item = suggest()
  check(item, "no suggestion shown")
  local marks = api.nvim_buf_get_extmarks(pbuf, api.nvim_get_namespaces().locode_ghost_text, 0, -1, { details = true })
  eq(#marks, 1, "ghost text extmarks")
  local details = marks[1][4]
  eq(marks[1][2], 1, "extmark row")
  local lines = vim.split(item.visible, "\n", { plain = true })
  eq(details.virt_text[1][1], lines[1], "virt_text")
  eq(details.virt_lines and #details.virt_lines or 0, #lines - 1, "virt_lines")
  check(item.visible:find("b", 1, true), "suggestion %q has no `b`", item.visible)
  check(locode.accept(pbuf), "accept returned false")
  local want = vim.deepcopy(SOURCE)
  want[2] = SOURCE[2] .. lines[1]
  for i = 2, #lines do
    table.insert(want, 1 + i, lines[i])
  end
  eq(table.concat(api.nvim_buf_get_lines(pbuf, 0, -1, true), "\n"), table.concat(want, "\n"), "buffer after accept")
  eq(#api.nvim_buf_get_extmarks(pbuf, api.nvim_get_namespaces().locode_ghost_text, 0, -1, {}), 0,
    "extmarks after accept")
  local state = request(pclient, "locode/documentState", { uri = vim.uri_from_bufnr(pbuf) }, pbuf)
  eq(state.text, buf_text(pbuf), "server text after accept")
  api.nvim_buf_set_lines(pbuf, 0, -1, true, SOURCE)
end)

test("plugin: typing in Insert mode shows ghost text, <Tab> accepts, <Tab> again is a tab",
  { "plugin: ghost text extmark and accept" }, function()
    api.nvim_buf_set_lines(pbuf, 0, -1, true, SOURCE)
    api.nvim_buf_set_lines(pbuf, 1, 2, true, { "    return a" })
    api.nvim_win_set_cursor(0, { 2, 0 })
    local seen = {}
    _G.locode_test_probe = function()
      seen.mode = api.nvim_get_mode().mode
      -- Neovim fires TextChangedI once typeahead is empty; here the rest of
      -- the keys are still queued, so fire it as the editor would.
      api.nvim_exec_autocmds("TextChangedI", { buffer = pbuf })
      seen.pending = locode.pending(pbuf) or nil
      vim.wait(TIMEOUT, function() return locode.current(pbuf) ~= nil end, 10)
      seen.item = locode.current(pbuf)
    end
    local keys = "A + <Cmd>lua _G.locode_test_probe()<CR><Tab><Tab><Esc>"
    api.nvim_feedkeys(api.nvim_replace_termcodes(keys, true, false, true), "tx", false)
    eq(seen.mode, "i", "mode while typing")
    check(seen.item, "no ghost text after typing `return a + `")
    check(seen.item.visible:find("b", 1, true), "suggestion %q has no `b`", seen.item.visible)
    local want = vim.deepcopy(SOURCE)
    local typed = vim.split(SOURCE[2] .. seen.item.visible .. "\t", "\n", { plain = true })
    table.remove(want, 2)
    for i = #typed, 1, -1 do
      table.insert(want, 2, typed[i])
    end
    eq(table.concat(api.nvim_buf_get_lines(pbuf, 0, -1, true), "\n"), table.concat(want, "\n"),
      "buffer after <Tab><Tab>")
    api.nvim_buf_set_lines(pbuf, 0, -1, true, SOURCE)
  end)

test("plugin: :LocodeDisable / :LocodeEnable", { "plugin: ghost text extmark and accept" }, function()
  vim.cmd("LocodeDisable")
  check(suggest() == nil, "a suggestion was shown while disabled")
  vim.cmd("LocodeEnable")
  local item = suggest()
  check(item and item.visible:find("b", 1, true), "after :LocodeEnable: %s", vim.inspect(item))
  check(locode.dismiss(pbuf), "dismiss returned false")
  check(locode.current(pbuf) == nil, "still shown after dismiss")
end)

---------------------------------------------------------------------------
-- Part 3 (Neovim 0.12+ only): the plugin with vim.lsp.inline_completion
---------------------------------------------------------------------------

if vim.lsp.inline_completion and vim.lsp.inline_completion.enable then
  local nbuf
  test("plugin: built-in inline completion (vim.lsp.inline_completion)", { "plugin: setup() starts locode for a python buffer" },
    function()
      locode.setup({ cmd = { BIN, "serve" }, filetypes = { "python" }, ghost_text = "builtin" })
      nbuf = python_buffer("native.py", SOURCE)
      check(vim.wait(TIMEOUT, function() return locode.client(nbuf) ~= nil end, 20), "not attached")
      wait_ready(locode.client(nbuf))
      check(vim.lsp.inline_completion.is_enabled({ bufnr = nbuf }), "inline completion not enabled")
      api.nvim_win_set_cursor(0, { 2, #SOURCE[2] })
      local ins = api.nvim_get_namespaces()["nvim.lsp.inline_completion"]
      check(ins, "no nvim.lsp.inline_completion namespace")
      api.nvim_exec_autocmds("CursorMovedI", { buffer = nbuf }) -- what typing does
      local shown = vim.wait(TIMEOUT, function()
        return #api.nvim_buf_get_extmarks(nbuf, ins, 0, -1, {}) > 0
      end, 20)
      check(shown, "no ghost text extmark")
      local mark = api.nvim_buf_get_extmarks(nbuf, ins, 0, -1, { details = true })[1]
      local ghost = ""
      for _, chunk in ipairs(mark[4].virt_text or {}) do
        ghost = ghost .. chunk[1]
      end
      check(ghost:find("b", 1, true), "ghost text %q has no `b`", ghost)
      -- accept_word goes through vim.lsp.inline_completion.get{on_accept}.
      check(locode.accept_word(nbuf), "accept_word returned false")
      check(vim.wait(2000, function()
        return api.nvim_buf_get_lines(nbuf, 1, 2, true)[1] ~= SOURCE[2]
      end, 10), "accept_word changed nothing")
      local line = api.nvim_buf_get_lines(nbuf, 1, 2, true)[1]
      local added = line:sub(#SOURCE[2] + 1)
      eq(line:sub(1, #SOURCE[2]), SOURCE[2], "text before the cursor")
      eq(added, ghost:match("^%s*[%w_]+") or ghost:match("^%s*[^%w_%s]+"), "inserted word (ghost text " .. ghost .. ")")
    end)
end

finish()
