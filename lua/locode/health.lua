-- :checkhealth locode
local M = {}

local h = vim.health or {}
local start = h.start or h.report_start or require("health").report_start
local ok = h.ok or h.report_ok or require("health").report_ok
local warn = h.warn or h.report_warn or require("health").report_warn
local err = h.error or h.report_error or require("health").report_error
local info = h.info or h.report_info or require("health").report_info

local function run(cmd)
  local out = vim.fn.system(cmd)
  return vim.v.shell_error == 0, vim.trim(out or "")
end

function M.check()
  local locode = require("locode")
  local cfg = locode.config

  start("Neovim")
  local v = vim.version()
  local version = string.format("%d.%d.%d", v.major, v.minor, v.patch)
  if vim.fn.has("nvim-0.7") == 1 then
    ok("Neovim " .. version)
  else
    err("Neovim " .. version .. ": locode needs 0.7 or later")
  end
  local path = locode.ghost_text_path()
  if path == "builtin" then
    ok("ghost text: Neovim's own (vim.lsp.inline_completion)")
  elseif path == "plugin" then
    ok("ghost text: this plugin's (extmarks" .. (vim.fn.has("nvim-0.10") == 1 and ", inline" or "") .. ")")
  else
    warn("ghost text: off (ghost_text = false)")
  end

  start("locode binary")
  local bin = cfg.cmd and cfg.cmd[1]
  local exe = bin and vim.fn.exepath(bin) or ""
  if exe == "" then
    err("not found: " .. tostring(bin), { "build it with `make build`", "set `cmd` in setup() to its path" })
    return
  end
  local fine, out = run({ exe, "--version" })
  if fine then
    ok(exe .. " (" .. out .. ")")
  else
    err(exe .. " --version failed: " .. out)
  end

  start("Model")
  local model = cfg.settings and cfg.settings.model
  if not model then
    local fine2, p = run({ exe, "model-path" })
    model = fine2 and p or nil
  end
  if model and vim.fn.filereadable(model) == 1 then
    ok(model .. string.format(" (%.0f MB)", vim.fn.getfsize(model) / 1e6))
  elseif model then
    warn("not there yet: " .. model, { "`make model` fetches the default model" })
  else
    warn("could not ask the binary where the model is")
  end

  start("Server")
  local clients = {}
  local all = vim.lsp.get_clients and vim.lsp.get_clients({ name = "locode" }) or vim.lsp.get_active_clients()
  for _, c in pairs(all) do
    if c.name == "locode" then
      table.insert(clients, c)
    end
  end
  if #clients == 0 then
    info("not running (it starts with the first file of: " .. table.concat(cfg.filetypes, ", ") .. ")")
    return
  end
  for _, c in ipairs(clients) do
    local st, e = locode.status_sync(c, 2000)
    if not st then
      err(string.format("client %d: locode/status failed: %s", c.id, tostring(e)))
    elseif st.state == "ready" then
      local m = st.model or {}
      ok(string.format("client %d: ready, %s (%s)", c.id, tostring(m.path or "?"), tostring(m.family or "?")))
    elseif st.state == "loading" then
      info(string.format("client %d: loading the model", c.id))
    else
      err(string.format("client %d: %s %s", c.id, tostring(st.state), tostring(st.error or "")))
    end
  end
  local buf = vim.api.nvim_get_current_buf()
  if locode.client(buf) then
    info("this buffer: " .. (locode.is_enabled(buf) and "suggestions on" or "suggestions off"))
  end
end

return M
