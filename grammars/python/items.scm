; Items a command works on when nothing is selected: explain and refactor
; take the innermost `@item` around the cursor.
;
; An `@item` whose parent node is an `@item` too is taken with its parent:
; a decorated function or class comes with its decorators.

(function_definition) @item
(class_definition) @item
(decorated_definition) @item
