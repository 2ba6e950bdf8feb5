; Block openers: `@block` is a construct whose `@body` is a braced block.
; A cursor right after the opening `{`, or inside an empty body, is where a
; whole block is expected.

(function_item body: (block) @body) @block
(closure_expression body: (block) @body) @block
(impl_item body: (declaration_list) @body) @block
(trait_item body: (declaration_list) @body) @block
(mod_item body: (declaration_list) @body) @block
(struct_item body: (field_declaration_list) @body) @block
(enum_item body: (enum_variant_list) @body) @block
(if_expression consequence: (block) @body) @block
(else_clause (block) @body) @block
(while_expression body: (block) @body) @block
(loop_expression body: (block) @body) @block
(for_expression body: (block) @body) @block
(match_expression body: (match_block) @body) @block
(unsafe_block (block) @body) @block
(async_block (block) @body) @block
(const_block body: (block) @body) @block
(let_declaration alternative: (block) @body) @block
(block) @body @block
