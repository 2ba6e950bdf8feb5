-- locode: commands and highlight at start-up. Nothing starts the server
-- until require("locode").setup() or vim.lsp.enable("locode") (0.11+).
if vim.g.loaded_locode or vim.fn.has("nvim-0.7") ~= 1 then
  return
end
vim.g.loaded_locode = true

local function highlight()
  vim.api.nvim_set_hl(0, "LocodeGhostText", { link = "Comment", default = true })
end
highlight()
-- A colorscheme clears it.
vim.api.nvim_create_autocmd("ColorScheme", {
  group = vim.api.nvim_create_augroup("locode_highlight", { clear = true }),
  callback = highlight,
})
require("locode").create_commands()
