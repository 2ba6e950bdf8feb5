; Block openers: `@block` is a construct whose `@body` is a braced block.
; A cursor right after the opening `{`, or inside an empty body, is where a
; whole block is expected.

(function_declaration body: (block) @body) @block
(method_declaration body: (block) @body) @block
(func_literal body: (block) @body) @block
(if_statement consequence: (block) @body) @block
(if_statement alternative: (block) @body) @block
(for_statement body: (block) @body) @block
(struct_type (field_declaration_list) @body) @block
(interface_type) @body @block
(block) @body @block
