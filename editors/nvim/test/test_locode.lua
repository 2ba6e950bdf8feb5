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
  or vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h:h:h:h")
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

local function get_clients_named()
  local out = {}
  for _, c in pairs(active_clients()) do
    if c.name == "locode" then
      table.insert(out, c)
    end
  end
  return out
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
    -- The version the client sent: the changedtick from 0.11 on.
    local version = has_011 and api.nvim_buf_get_changedtick(bufnr) or vim.lsp.util.buf_versions[bufnr]
    eq(state.version, version, "server version " .. what)
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
-- Part 2: the plugin, installed as a plugin manager installs it (the
-- repository root on 'runtimepath', plugin/ sourced, doc/ tagged)
---------------------------------------------------------------------------

local locode, pbuf, pclient
local server_messages, shown_documents = {}, {}
local ns_ghost

test("plugin: the repository root is a plugin (plugin/, lua/, lsp/, doc/ and :help locode)", {}, function()
  for _, f in ipairs({ "plugin/locode.lua", "lua/locode/init.lua", "lua/locode/health.lua", "lsp/locode.lua",
    "doc/locode.txt" }) do
    check(vim.fn.filereadable(PLUGIN_DIR .. "/" .. f) == 1, "%s missing in %s", f, PLUGIN_DIR)
  end
  vim.opt.runtimepath:prepend(PLUGIN_DIR)
  vim.cmd("runtime! plugin/locode.lua")
  check(vim.g.loaded_locode, "plugin/locode.lua did not run")
  for _, name in ipairs({ "LocodeExplain", "LocodeRefactor", "LocodeRefactorCloud", "LocodeToggle", "LocodeEnable",
    "LocodeDisable", "LocodeStatus", "LocodeSuggest" }) do
    check(api.nvim_get_commands({})[name], "command %s missing after start-up", name)
  end
  -- Tags made in a copy, as a plugin manager makes them in its clone.
  local docs = tmp .. "/docs"
  vim.fn.mkdir(docs .. "/doc", "p")
  vim.fn.writefile(vim.fn.readfile(PLUGIN_DIR .. "/doc/locode.txt"), docs .. "/doc/locode.txt")
  vim.cmd("helptags " .. vim.fn.fnameescape(docs .. "/doc"))
  vim.opt.runtimepath:append(docs)
  for _, tag in ipairs({ "locode", "locode-install", "locode-keys", "locode-health", "locode.statusline()" }) do
    vim.cmd("help " .. tag)
    eq(vim.fn.expand("%:t"), "locode.txt", ":help " .. tag .. " opens")
    vim.cmd("helpclose")
  end
end)

-- A mapping of the user's own, made before locode: <Tab> must do this
-- whenever no suggestion is shown.
vim.cmd("inoremap <Tab> <C-r>='[user-tab]'<CR>")

test("plugin: setup() starts locode for a python buffer",
  { "plugin: the repository root is a plugin (plugin/, lua/, lsp/, doc/ and :help locode)" }, function()
    locode = require("locode")
    vim.lsp.handlers["window/showMessage"] = function(_, result)
      table.insert(server_messages, result)
    end
    vim.lsp.handlers["window/showDocument"] = function(_, result)
      table.insert(shown_documents, result)
      return { success = true }
    end
    locode.setup({
      cmd = { BIN, "serve" },
      ghost_text = "plugin", -- this plugin's own ghost text, as on Neovim < 0.12
      debounce_ms = 10,
      settings = { explainMaxTokens = 48, refactorMaxTokens = 160 },
    })
    eq(table.concat(locode.config.filetypes, ","),
      "python,rust,typescript,typescriptreact,javascript,javascriptreact,go,c,cpp,java", "default filetypes")
    pbuf = python_buffer("plugin.py", SOURCE) -- FileType python -> attach
    local ok = vim.wait(TIMEOUT, function()
      pclient = locode.client(pbuf)
      return pclient ~= nil
    end, 20)
    check(ok, "the plugin did not attach a locode client")
    wait_ready(pclient)
    -- e.g. "settings must be a JSON object" when {} went out as [].
    eq(#server_messages, 0, "messages from the server (" .. vim.inspect(server_messages) .. ")")
    ns_ghost = api.nvim_get_namespaces().locode_ghost_text
    check(vim.wait(5000, function() return locode.statusline(pbuf) == "locode" end, 20),
      "statusline %q, not `locode` once ready", locode.statusline(pbuf))
  end)

test("plugin: root_dir is the folder holding the marker (a folder or a file)", {}, function()
  local proj = tmp .. "/proj"
  vim.fn.mkdir(proj .. "/.git", "p")
  vim.fn.mkdir(proj .. "/pkg/sub", "p")
  vim.fn.writefile({ "[project]" }, proj .. "/pkg/pyproject.toml")
  local b = api.nvim_create_buf(true, false)
  api.nvim_buf_set_name(b, proj .. "/pkg/sub/mod.py")
  eq(locode.root_dir(b, { ".git" }), proj, "root with a .git folder")
  eq(locode.root_dir(b, { "pyproject.toml" }), proj .. "/pkg", "root with a pyproject.toml file")
  eq(locode.root_dir(b, { "no-such-marker" }), vim.fn.getcwd(), "root without a marker")
  api.nvim_buf_delete(b, { force = true })
end)

local function ghost_marks(b)
  return api.nvim_buf_get_extmarks(b, ns_ghost, 0, -1, { details = true })
end

local function lines_of(b)
  return table.concat(api.nvim_buf_get_lines(b, 0, -1, true), "\n")
end

-- Asks for a suggestion at (row, col) and waits for it (or its absence).
local function suggest_at(b, row, col)
  api.nvim_set_current_buf(b)
  api.nvim_win_set_cursor(0, { row, col })
  locode.request(b, true)
  if not locode.pending(b) then
    return nil -- not asked: disabled here
  end
  check(vim.wait(TIMEOUT, function() return not locode.pending(b) end, 10), "no answer")
  return locode.current(b)
end

local function suggest()
  return suggest_at(pbuf, 2, #SOURCE[2])
end

-- Feeds keys in Insert mode; `probe` runs where <Cmd>probe<CR> stands.
-- Neovim fires TextChangedI only once typeahead is empty, so a probe fires
-- it as the editor would after the keys before it.
local function keys(k)
  api.nvim_feedkeys(api.nvim_replace_termcodes(k, true, false, true), "tx", false)
end

_G.locode_test = {}
function _G.locode_test.changed()
  api.nvim_exec_autocmds("TextChangedI", { buffer = api.nvim_get_current_buf() })
end

test("plugin: ghost text extmark and accept", { "plugin: setup() starts locode for a python buffer" }, function()
  local item = suggest()
  check(item, "no suggestion shown")
  local marks = ghost_marks(pbuf)
  eq(#marks, 1, "ghost text extmarks")
  eq(marks[1][2], 1, "extmark row")
  local lines = vim.split(item.visible, "\n", { plain = true })
  eq(marks[1][4].virt_text[1][1], lines[1], "virt_text")
  eq(marks[1][4].virt_lines and #marks[1][4].virt_lines or 0, #lines - 1, "virt_lines")
  check(item.visible:find("b", 1, true), "suggestion %q has no `b`", item.visible)
  check(locode.accept(pbuf), "accept returned false")
  local want = vim.deepcopy(SOURCE)
  want[2] = SOURCE[2] .. lines[1]
  for i = 2, #lines do
    table.insert(want, 1 + i, lines[i])
  end
  eq(lines_of(pbuf), table.concat(want, "\n"), "buffer after accept")
  eq(#ghost_marks(pbuf), 0, "extmarks after accept")
  local st = request(pclient, "locode/documentState", { uri = vim.uri_from_bufnr(pbuf) }, pbuf)
  eq(st.text, buf_text(pbuf), "server text after accept")
  api.nvim_buf_set_lines(pbuf, 0, -1, true, SOURCE)
end)

test("plugin: <Tab> is the user's mapping while nothing is shown, accepts while something is",
  { "plugin: ghost text extmark and accept" }, function()
    api.nvim_buf_set_lines(pbuf, 0, -1, true, SOURCE)
    -- Nothing shown: the user's <Tab>.
    eq(vim.fn.maparg("<Tab>", "i", false, true).buffer, 0, "no buffer mapping of <Tab> while nothing is shown")
    api.nvim_win_set_cursor(0, { 1, 0 })
    keys("A<Tab><Esc>")
    eq(api.nvim_buf_get_lines(pbuf, 0, 1, true)[1], SOURCE[1] .. "[user-tab]", "line 1 after <Tab> with nothing shown")
    api.nvim_buf_set_lines(pbuf, 0, -1, true, SOURCE)
    -- Typed: a suggestion shows, <Tab> takes it, the next <Tab> is the user's again.
    api.nvim_buf_set_lines(pbuf, 1, 2, true, { "    return a" })
    api.nvim_win_set_cursor(0, { 2, 0 })
    local seen = {}
    function _G.locode_test.wait_shown()
      _G.locode_test.changed()
      seen.mode = api.nvim_get_mode().mode
      vim.wait(TIMEOUT, function() return locode.current(pbuf) ~= nil end, 10)
      seen.item = locode.current(pbuf)
      seen.map = vim.fn.maparg("<Tab>", "i", false, true).desc
    end
    keys("A + <Cmd>lua _G.locode_test.wait_shown()<CR><Tab><Tab><Esc>")
    eq(seen.mode, "i", "mode while typing")
    check(seen.item, "no ghost text after typing `return a + `")
    eq(seen.map, "locode: accept", "<Tab> while a suggestion is shown")
    local want = vim.deepcopy(SOURCE)
    local typed = vim.split(SOURCE[2] .. seen.item.visible .. "[user-tab]", "\n", { plain = true })
    table.remove(want, 2)
    for i = #typed, 1, -1 do
      table.insert(want, 2, typed[i])
    end
    eq(lines_of(pbuf), table.concat(want, "\n"), "buffer after <Tab><Tab>")
    eq(vim.fn.maparg("<Tab>", "i", false, true).buffer, 0, "<Tab> unmapped again after the accept")
    api.nvim_buf_set_lines(pbuf, 0, -1, true, SOURCE)
  end)

test("plugin: a buffer-local <Tab> (as nvim-cmp makes, or a Vim script <expr> one) comes back after a suggestion",
  { "plugin: ghost text extmark and accept" }, function()
    local kinds = {
      { desc = "cmp-like", inserts = "[buffer-tab]", make = function()
        vim.keymap.set("i", "<Tab>", function() return "[buffer-tab]" end,
          { buffer = pbuf, expr = true, desc = "cmp-like" })
      end },
      { desc = nil, inserts = "[expr-tab]", make = function()
        vim.cmd([[inoremap <buffer> <expr> <Tab> pumvisible() ? "\<C-n>" : "[expr-tab]"]])
      end },
    }
    for _, kind in ipairs(kinds) do
      api.nvim_set_current_buf(pbuf)
      kind.make()
      local before = vim.fn.maparg("<Tab>", "i", false, true)
      local item = suggest()
      check(item, "no suggestion")
      eq(vim.fn.maparg("<Tab>", "i", false, true).desc, "locode: accept", "<Tab> while shown")
      check(locode.dismiss(pbuf), "dismiss returned false")
      local after = vim.fn.maparg("<Tab>", "i", false, true)
      eq(after.desc, kind.desc, "<Tab>'s desc after dismiss")
      -- (Neovim may spell the keys in it differently: <C-n> / <C-N>.)
      eq(after.rhs and after.rhs:lower(), before.rhs and before.rhs:lower(), "<Tab>'s rhs after dismiss")
      eq(after.expr, before.expr, "<Tab> is an <expr> mapping after dismiss")
      api.nvim_win_set_cursor(0, { 1, 0 })
      keys("A<Tab><Esc>")
      eq(api.nvim_buf_get_lines(pbuf, 0, 1, true)[1], SOURCE[1] .. kind.inserts, "line 1 after <Tab>")
      api.nvim_buf_del_keymap(pbuf, "i", "<Tab>")
      api.nvim_buf_set_lines(pbuf, 0, -1, true, SOURCE)
    end
  end)

-- The early-answer document of tests/e2e.rs, shortened: the model writes a
-- docstring and a return in the empty body of `distance`.
local EARLY = { "import math", "", "" }
for i = 0, 11 do
  vim.list_extend(EARLY, {
    string.format("def scale_%d(values, factor):", i),
    string.format('    """Multiply every value by factor and add %d."""', i),
    string.format("    return [v * factor + %d for v in values]", i),
    "",
    "",
  })
end
vim.list_extend(EARLY, { "def distance(x1, y1, x2, y2):", "    ", "", "", "print(distance(0, 0, 3, 4))" })
local EARLY_ROW = #EARLY - 3 -- 1-based row of the empty body

local ebuf
test("plugin: accept word, then accept line, of a multi-line suggestion", { "plugin: ghost text extmark and accept" },
  function()
    ebuf = python_buffer("early.py", EARLY)
    check(vim.wait(TIMEOUT, function() return locode.client(ebuf) ~= nil end, 20), "not attached")
    local item = suggest_at(ebuf, EARLY_ROW, 4)
    check(item and item.visible:find("%S"), "no suggestion in the body: %s", vim.inspect(item))
    local word = item.visible:match("^%s*[%w_]+") or item.visible:match("^%s*[^%w_%s]+")
    check(locode.accept_word(ebuf), "accept_word returned false")
    eq(api.nvim_buf_get_lines(ebuf, EARLY_ROW - 1, EARLY_ROW, true)[1], "    " .. word, "line after accept_word")
    local rest = locode.current(ebuf)
    check(rest and rest.visible == item.visible:sub(#word + 1), "after accept_word the rest is shown: %s",
      vim.inspect(rest))
    eq(ghost_marks(ebuf)[1][4].virt_text[1][1], vim.split(rest.visible, "\n", { plain = true })[1],
      "ghost text after accept_word")
    local first = rest.visible:match("^[^\n]*")
    check(locode.accept_line(ebuf), "accept_line returned false")
    eq(api.nvim_buf_get_lines(ebuf, EARLY_ROW - 1, EARLY_ROW, true)[1], "    " .. word .. first, "line after accept_line")
    if rest.visible:find("\n") then
      check(locode.current(ebuf), "the lines after the first are still shown")
    end
    api.nvim_buf_set_lines(ebuf, 0, -1, true, EARLY)
    locode.dismiss(ebuf)
  end)

test("plugin: next and previous ask again when one candidate is known", { "plugin: ghost text extmark and accept" },
  function()
    local item = suggest()
    check(item, "no suggestion")
    eq(vim.fn.maparg("<M-]>", "i", false, true).desc, "locode: next", "<M-]> while shown")
    check(locode.next(pbuf, 1), "next returned false")
    check(locode.pending(pbuf), "next with one candidate did not ask again")
    check(vim.wait(TIMEOUT, function() return not locode.pending(pbuf) end, 10), "no answer to next")
    check(locode.current(pbuf), "nothing shown after next")
    check(locode.next(pbuf, -1), "previous returned false")
    check(vim.wait(TIMEOUT, function() return not locode.pending(pbuf) end, 10), "no answer to previous")
    local again = locode.current(pbuf)
    check(again and again.visible:find("b", 1, true), "after previous: %s", vim.inspect(again))
    locode.dismiss(pbuf)
    eq(vim.fn.maparg("<M-]>", "i", false, true).lhs, nil, "<M-]> unmapped once nothing is shown")
  end)

test("plugin: typing through a suggestion keeps it shown (no flicker) and a typed-ahead accept lands after the typed keys",
  { "plugin: accept word, then accept line, of a multi-line suggestion" }, function()
    api.nvim_buf_set_lines(ebuf, 0, -1, true, EARLY)
    local item = suggest_at(ebuf, EARLY_ROW, 4)
    check(item and #item.visible >= 3, "need a suggestion of three characters or more: %s", vim.inspect(item))
    local c1, c2 = item.visible:sub(1, 1), item.visible:sub(2, 2)
    local seen = {}
    function _G.locode_test.after_one()
      seen.marks = #ghost_marks(ebuf) -- before the editor's TextChangedI
      _G.locode_test.changed()
      seen.item = locode.current(ebuf)
      seen.marks_after = #ghost_marks(ebuf)
    end
    api.nvim_win_set_cursor(0, { EARLY_ROW, 3 })
    -- One character of it typed: the rest is shown at once. Then one more
    -- and <Tab> in the same typeahead (no TextChangedI between them).
    keys("a" .. c1 .. "<Cmd>lua _G.locode_test.after_one()<CR>" .. c2 .. "<Tab><Esc>")
    check(seen.item, "nothing shown right after typing %q", c1)
    eq(seen.item.visible, item.visible:sub(2), "shown after typing the first character")
    eq(seen.marks_after, 1, "extmarks right after typing")
    local want = vim.deepcopy(EARLY)
    local typed = vim.split("    " .. c1 .. seen.item.visible, "\n", { plain = true })
    table.remove(want, EARLY_ROW)
    for i = #typed, 1, -1 do
      table.insert(want, EARLY_ROW, typed[i])
    end
    eq(lines_of(ebuf), table.concat(want, "\n"), "buffer: the suggestion once, after the typed characters")
    api.nvim_buf_set_lines(ebuf, 0, -1, true, EARLY)
  end)

test("plugin: an accept key typed after a character the suggestion does not start with is the user's",
  { "plugin: ghost text extmark and accept" }, function()
    api.nvim_buf_set_lines(pbuf, 0, -1, true, SOURCE)
    local item = suggest()
    check(item and item.visible:sub(1, 1) ~= "z", "suggestion: %s", vim.inspect(item))
    api.nvim_win_set_cursor(0, { 2, #SOURCE[2] - 1 })
    -- `z` and <Tab> in one typeahead: <Tab> is still locode's mapping when
    -- it runs, finds the suggestion out of date and passes the key on.
    keys("az<Tab><Esc>")
    eq(api.nvim_buf_get_lines(pbuf, 1, 2, true)[1], SOURCE[2] .. "z[user-tab]", "line 2")
    eq(locode.current(pbuf), nil, "suggestion after the mismatch")
    eq(vim.fn.maparg("<Tab>", "i", false, true).buffer, 0, "no buffer mapping of <Tab> left")
    api.nvim_buf_set_lines(pbuf, 0, -1, true, SOURCE)
  end)

test("plugin: ghost text hidden while the completion menu is open", { "plugin: ghost text extmark and accept" },
  function()
    api.nvim_set_current_buf(pbuf)
    api.nvim_buf_set_lines(pbuf, 0, -1, true, SOURCE)
    local seen = {}
    function _G.locode_test.menu_probe()
      _G.locode_test.changed()
      vim.wait(TIMEOUT, function() return locode.current(pbuf) ~= nil end, 10)
      seen.before = #ghost_marks(pbuf)
    end
    function _G.locode_test.menu_open()
      seen.pum = vim.fn.pumvisible()
      seen.during = #ghost_marks(pbuf)
      seen.item = locode.current(pbuf)
      seen.tab = vim.fn.maparg("<Tab>", "i", false, true).desc
    end
    api.nvim_win_set_cursor(0, { 2, 0 })
    -- <C-n>: keyword completion from the buffer (`add`, `print`, ...).
    keys("A<Cmd>lua _G.locode_test.menu_probe()<CR><C-n><Cmd>lua _G.locode_test.menu_open()<CR><C-e><Esc>")
    eq(seen.before, 1, "ghost text before the menu")
    eq(seen.pum, 1, "pumvisible() after <C-n>")
    eq(seen.during, 0, "ghost text extmarks while the menu is open")
    eq(seen.item, nil, "suggestion shown while the menu is open")
    check(seen.tab ~= "locode: accept", "<Tab> is locode's while the menu is open")
    api.nvim_buf_set_lines(pbuf, 0, -1, true, SOURCE)
  end)

test("plugin: locode/suggestionReady grows an early answer without a keystroke",
  { "plugin: accept word, then accept line, of a multi-line suggestion" }, function()
    locode.configure({ earlyAnswerMs = 1 })
    local ready = 0
    local orig = locode.on_suggestion_ready
    locode.on_suggestion_ready = function(...)
      ready = ready + 1
      return orig(...)
    end
    api.nvim_set_current_buf(ebuf)
    api.nvim_buf_set_lines(ebuf, 0, -1, true, EARLY)
    local seen = {}
    function _G.locode_test.early()
      locode.request(ebuf, true)
      vim.wait(TIMEOUT, function() return locode.current(ebuf) ~= nil end, 5)
      seen.first = locode.current(ebuf)
      vim.wait(TIMEOUT, function()
        local cur = locode.current(ebuf)
        return ready > 0 and not locode.pending(ebuf) and cur ~= nil and cur.visible:find("\n") ~= nil
      end, 10)
      seen.whole = locode.current(ebuf)
      seen.ready = ready
    end
    api.nvim_win_set_cursor(0, { EARLY_ROW, 0 })
    keys("A<Cmd>lua _G.locode_test.early()<CR><Esc>")
    locode.on_suggestion_ready = orig
    locode.configure({ earlyAnswerMs = 400 })
    check(seen.first, "no early answer")
    out("   early: " .. vim.inspect(seen.first.visible) .. ", then: " .. vim.inspect(seen.whole and seen.whole.visible))
    check(not seen.first.visible:find("\n"), "the early answer is one line: %q", seen.first.visible)
    check(seen.ready >= 1, "no locode/suggestionReady")
    check(seen.whole and seen.whole.visible:find("\n"), "the answer did not grow: %s", vim.inspect(seen.whole))
    eq(seen.whole.visible:sub(1, #seen.first.visible), seen.first.visible, "the whole answer starts with the early one")
  end)

test("plugin: :LocodeDisable / :LocodeEnable, for a buffer, a filetype and everywhere; statusline",
  { "plugin: ghost text extmark and accept" }, function()
    api.nvim_set_current_buf(pbuf)
    vim.cmd("LocodeDisable buffer")
    eq(vim.b[pbuf].locode_enabled, false, "b:locode_enabled")
    eq(locode.statusline(pbuf), "locode:off", "statusline while off")
    check(suggest() == nil, "a suggestion was shown while disabled for the buffer")
    vim.cmd("LocodeEnable buffer")
    check(suggest(), "nothing after :LocodeEnable buffer")
    vim.cmd("LocodeDisable filetype")
    check(suggest() == nil, "a suggestion was shown while disabled for python")
    check(not locode.is_enabled(ebuf), "the other python buffer is still enabled")
    vim.cmd("LocodeEnable filetype")
    check(suggest(), "nothing after :LocodeEnable filetype")
    vim.cmd("LocodeDisable")
    check(suggest() == nil, "a suggestion was shown while disabled everywhere")
    vim.cmd("LocodeEnable")
    local item = suggest()
    check(item and item.visible:find("b", 1, true), "after :LocodeEnable: %s", vim.inspect(item))
    eq(locode.statusline(pbuf), "locode", "statusline when on")
    check(locode.dismiss(pbuf), "dismiss returned false")
    check(locode.current(pbuf) == nil, "still shown after dismiss")
  end)

local function float_text()
  for _, w in ipairs(api.nvim_list_wins()) do
    if api.nvim_win_get_config(w).relative ~= "" then
      return table.concat(api.nvim_buf_get_lines(api.nvim_win_get_buf(w), 0, -1, false), "\n"), w
    end
  end
end

test("plugin: :LocodeExplain shows one floating window", { "plugin: ghost text extmark and accept" }, function()
  api.nvim_set_current_buf(pbuf)
  api.nvim_buf_set_lines(pbuf, 0, -1, true, { "def add(a, b):", "    return a + b", "" })
  local wins = #api.nvim_list_wins()
  vim.cmd("1,2LocodeExplain")
  check(vim.wait(TIMEOUT, function() return float_text() ~= nil end, 20), "no explanation window")
  local text, w = float_text()
  out("   explain: " .. vim.inspect(text:sub(1, 100)))
  check(text:find("%a"), "empty explanation")
  eq(#api.nvim_list_wins(), wins + 1, "windows: the float only")
  eq(#shown_documents, 0, "window/showDocument requests (" .. vim.inspect(shown_documents) .. ")")
  api.nvim_win_close(w, true)
end)

test("plugin: :LocodeRefactor rewrites the range", { "plugin: ghost text extmark and accept" }, function()
  api.nvim_set_current_buf(pbuf)
  local before = { "def add(a, b):", "    return a + b", "" }
  api.nvim_buf_set_lines(pbuf, 0, -1, true, before)
  vim.cmd("1,2LocodeRefactor rename the function add to plus")
  local changed = vim.wait(TIMEOUT, function() return lines_of(pbuf) ~= table.concat(before, "\n") end, 20)
  check(changed, "the buffer did not change; messages: %s", vim.inspect(server_messages))
  out("   refactor: " .. vim.inspect(lines_of(pbuf)))
  check(lines_of(pbuf):find("plus", 1, true), "no `plus` in %q", lines_of(pbuf))
  local st = request(pclient, "locode/documentState", { uri = vim.uri_from_bufnr(pbuf) }, pbuf)
  eq(st.text, buf_text(pbuf), "server text after the refactor")
  api.nvim_buf_set_lines(pbuf, 0, -1, true, SOURCE)
end)

test("plugin: setup() called again keeps the ghost text", { "plugin: ghost text extmark and accept" }, function()
  api.nvim_set_current_buf(pbuf)
  locode.setup({ cmd = { BIN, "serve" }, ghost_text = "plugin", debounce_ms = 10 })
  api.nvim_buf_set_lines(pbuf, 0, -1, true, SOURCE)
  api.nvim_buf_set_lines(pbuf, 1, 2, true, { "    return a" })
  api.nvim_win_set_cursor(0, { 2, 0 })
  local seen = {}
  function _G.locode_test.after_setup()
    -- The editor's own TextChangedI, not the test's: only the plugin's
    -- autocmds can ask for a suggestion.
    _G.locode_test.changed()
    vim.wait(TIMEOUT, function() return locode.current(pbuf) ~= nil end, 10)
    seen.item = locode.current(pbuf)
  end
  keys("A + <Cmd>lua _G.locode_test.after_setup()<CR><Esc>")
  check(seen.item and #ghost_marks(pbuf) == 0, "ghost text after the second setup(): %s", vim.inspect(seen.item))
  eq(#get_clients_named(), 1, "locode clients")
end)

test("plugin: :checkhealth locode", { "plugin: setup() starts locode for a python buffer" }, function()
  vim.cmd("checkhealth locode")
  local text = lines_of(api.nvim_get_current_buf())
  vim.cmd("bwipeout!")
  out("   " .. text:gsub("\n", "\n   "))
  check(text:find("Neovim " .. vim.version().major .. "." .. vim.version().minor, 1, true), "no Neovim version")
  check(text:find("ghost text: this plugin", 1, true), "no ghost-text path")
  check(text:find("locode 0", 1, true), "no binary version")
  check(text:find("%.gguf"), "no model")
  check(text:find("ready", 1, true), "server not ready")
  check(not text:find("ERROR"), "errors reported")
end)

---------------------------------------------------------------------------
-- Part 3 (Neovim 0.11+): lsp/locode.lua with vim.lsp.enable
---------------------------------------------------------------------------

local function stop_all()
  for _, c in pairs(active_clients()) do
    call(c, "stop", true)
  end
  check(vim.wait(10000, function() return #active_clients() == 0 end, 50), "clients still running")
end

if vim.lsp.enable and vim.lsp.config then
  test("vim.lsp.enable('locode') with lsp/locode.lua: one client, ghost text",
    { "plugin: ghost text extmark and accept" }, function()
      stop_all()
      locode.setup({ cmd = { BIN, "serve" }, ghost_text = "plugin", debounce_ms = 10, autostart = false })
      vim.lsp.enable("locode")
      local b1 = python_buffer("enabled1.py", SOURCE)
      check(vim.wait(TIMEOUT, function() return locode.client(b1) ~= nil end, 20), "vim.lsp.enable did not attach")
      wait_ready(locode.client(b1))
      local b2 = python_buffer("enabled2.py", SOURCE)
      check(vim.wait(TIMEOUT, function() return locode.client(b2) ~= nil end, 20), "second buffer not attached")
      eq(#get_clients_named(), 1, "locode clients for two buffers")
      local item = suggest_at(b2, 2, #SOURCE[2])
      check(item and item.visible:find("b", 1, true), "suggestion: %s", vim.inspect(item))
      check(locode.accept(b2), "accept returned false")
      check(api.nvim_buf_get_lines(b2, 1, 2, true)[1]:find("^    return a %+ .*b"), "line 2 after accept: %q",
        api.nvim_buf_get_lines(b2, 1, 2, true)[1])
      vim.lsp.enable("locode", false)
    end)
end

---------------------------------------------------------------------------
-- Part 4 (Neovim 0.12+): the plugin with vim.lsp.inline_completion
---------------------------------------------------------------------------

if vim.lsp.inline_completion and vim.lsp.inline_completion.enable then
  test("plugin: built-in inline completion (vim.lsp.inline_completion): ghost text, Tab, suggestionReady",
    { "plugin: ghost text extmark and accept" }, function()
      stop_all()
      locode.setup({ cmd = { BIN, "serve" }, ghost_text = "builtin", settings = { earlyAnswerMs = 1 } })
      local nbuf = python_buffer("native.py", EARLY)
      check(vim.wait(TIMEOUT, function() return locode.client(nbuf) ~= nil end, 20), "not attached")
      wait_ready(locode.client(nbuf))
      check(vim.lsp.inline_completion.is_enabled({ bufnr = nbuf }), "inline completion not enabled")
      local ins
      local seen = {}
      local function ghost()
        local mark = api.nvim_buf_get_extmarks(nbuf, ins, 0, -1, { details = true })[1]
        if not mark then
          return nil
        end
        local text = ""
        for _, chunk in ipairs(mark[4].virt_text or {}) do
          text = text .. chunk[1]
        end
        return text, mark[4].virt_lines and #mark[4].virt_lines or 0
      end
      function _G.locode_test.builtin()
        api.nvim_exec_autocmds("CursorMovedI", { buffer = nbuf })
        ins = api.nvim_get_namespaces()["nvim.lsp.inline_completion"]
        vim.wait(TIMEOUT, function() return ins and ghost() ~= nil end, 10)
        seen.first = ghost()
        -- The early first line grows into the whole answer by itself.
        vim.wait(TIMEOUT, function() return select(2, ghost()) ~= nil and select(2, ghost()) > 0 end, 10)
        seen.first_line, seen.more = ghost()
        seen.tab = vim.fn.maparg("<Tab>", "i", false, true).desc
      end
      api.nvim_win_set_cursor(0, { EARLY_ROW, 0 })
      keys("A<Cmd>lua _G.locode_test.builtin()<CR><Tab><Esc>")
      check(seen.first, "no ghost text")
      check((seen.more or 0) > 0, "the early answer did not grow (suggestionReady): %s", vim.inspect(seen))
      eq(seen.tab, "locode: accept", "<Tab> while the built-in ghost text is shown")
      local body = api.nvim_buf_get_lines(nbuf, EARLY_ROW - 1, EARLY_ROW + seen.more, true)
      eq(body[1], "    " .. seen.first_line, "first line after <Tab>")
    end)
end

finish()
