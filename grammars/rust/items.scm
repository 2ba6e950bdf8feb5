; Items a command works on when nothing is selected: explain and refactor
; take the innermost `@item` around the cursor.
;
; An `@item` whose parent node is an `@item` too is taken with its parent.

(function_item) @item
(impl_item) @item
(struct_item) @item
(enum_item) @item
(trait_item) @item
(mod_item) @item
