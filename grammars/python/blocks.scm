; Block openers: `@block` is a compound statement whose `@body` is an
; indented block after a `:`. A cursor right after the `:` (on the same line
; or an indented new line), or inside an empty body, is where a whole block is
; expected.

(function_definition body: (block) @body) @block
(class_definition body: (block) @body) @block
(if_statement consequence: (block) @body) @block
(elif_clause consequence: (block) @body) @block
(else_clause body: (block) @body) @block
(for_statement body: (block) @body) @block
(while_statement body: (block) @body) @block
(try_statement body: (block) @body) @block
(except_clause (block) @body) @block
(finally_clause (block) @body) @block
(with_statement body: (block) @body) @block
(match_statement body: (block) @body) @block
(case_clause consequence: (block) @body) @block
