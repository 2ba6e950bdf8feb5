-- For Neovim 0.11+: `vim.lsp.enable("locode")` starts locode for the
-- filetypes below, with this plugin's ghost text, keys and status (call
-- require("locode").setup({ autostart = false, ... }) first to change its
-- options, or vim.lsp.config("locode", { cmd = { ... } }) to change these).
return require("locode").lsp_config()
