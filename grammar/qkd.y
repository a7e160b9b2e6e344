/* qkd.y — the .qkd grammar (bison, pure, no conflicts). Actions only build AST nodes
 * (ast.h); every node gets the span of its text. Fields and layers need no separators because
 * the lexer returns `name:` as one FIELD token. */
%code requires {
#include "ast.h"
#include "parse.h"
#define QKD_YYLTYPE qkd_span
#define QKD_YYLTYPE_IS_DECLARED 1
#define QKD_YYLTYPE_IS_TRIVIAL 0
#define YYLLOC_DEFAULT(Cur, Rhs, N)                                        \
  do {                                                                     \
    if (N) {                                                               \
      (Cur).file = YYRHSLOC(Rhs, 1).file;                                  \
      (Cur).start = YYRHSLOC(Rhs, 1).start;                                \
      (Cur).end = YYRHSLOC(Rhs, N).end;                                    \
    } else {                                                               \
      (Cur).file = YYRHSLOC(Rhs, 0).file;                                  \
      (Cur).start = (Cur).end = YYRHSLOC(Rhs, 0).end;                      \
    }                                                                      \
  } while (0)
}

%code {
#define YYSTYPE QKD_YYSTYPE
#define YYLTYPE QKD_YYLTYPE
#include "qkd_lexer.h"
#define scanner (ctx->scanner)
static void qkd_yyerror(YYLTYPE *loc, qkd_parse_ctx *ctx, const char *msg);
#define A (ctx->arena)
static qkd_ast *node(qkd_parse_ctx *ctx, qkd_ast_kind k, qkd_span sp) { return qkd_ast_new(ctx->arena, k, sp); }
static qkd_ast *named(qkd_parse_ctx *ctx, qkd_ast_kind k, qkd_span sp, const char *name, qkd_span nsp) {
  qkd_ast *n = qkd_ast_new(ctx->arena, k, sp);
  n->name = name;
  n->name_span = nsp;
  return n;
}
static qkd_ast *bin(qkd_parse_ctx *ctx, int op, qkd_ast *a, qkd_ast *b, qkd_span sp) {
  qkd_ast *n = qkd_ast_new(ctx->arena, QKD_AST_BIN, sp);
  n->op = op;
  return qkd_ast_set(n, a, b);
}
static qkd_ast *decl(qkd_parse_ctx *ctx, qkd_decl_kind k, qkd_span sp, const char *name, qkd_span nsp,
                     qkd_ast *params, qkd_ast *body, qkd_ast *value) {
  qkd_ast *n = named(ctx, QKD_AST_DECL, sp, name, nsp);
  n->decl_kind = k;
  if (params) { n->params = params->items; n->has_parens = params->has_parens; }
  if (body) { n->items = body->items; if (body->depth + 1 > n->depth) n->depth = body->depth + 1; }
  return qkd_ast_set(n, value, NULL);
}
}

%define api.pure full
%define api.prefix {qkd_yy}
%define parse.error detailed
%locations
%initial-action { @$ = (qkd_span){ctx->file, 0, 0}; }
%lex-param { void *scanner }
%parse-param { qkd_parse_ctx *ctx }
%expect 0

%union {
  const char *str;
  double num;
  qkd_ast *node;
}


%token <str> IDENT "identifier" FIELD "field name" STRING "string"
%token <num> INT "integer" REAL "number"
%token USE "'use'" DATASET "'dataset'" NET "'net'" ENCODING "'encoding'" CIRCUIT "'circuit'"
%token LOSS "'loss'" TEACHER "'teacher'" STUDENT "'student'" EXPERIMENT "'experiment'" GRID "'grid'"
%token FOR "'for'" IN "'in'" DOTDOT "'..'"

%nonassoc DOTDOT
%left '+' '-'
%left '*' '/' '%'
%precedence NEG
%right '^'

%type <str> label
%type <node> decl params idlist fields field layers layer stmts stmt args arg expr exprlist block_kind

%%
program:
    %empty
  | program decl                { if ($2) qkd_vec_push(A, &ctx->decls, $2); }
  ;

decl:
    USE STRING                  { $$ = named(ctx, QKD_AST_USE, @$, $2, @2); }
  | block_kind IDENT '{' fields '}' { $$ = decl(ctx, $1->decl_kind, @$, $2, @2, NULL, $4, NULL); }
  | NET IDENT params '{' layers '}' { $$ = decl(ctx, QKD_DECL_NET, @$, $2, @2, $3, $5, NULL); }
  | NET IDENT params '=' expr   { $$ = decl(ctx, QKD_DECL_NET, @$, $2, @2, $3, NULL, $5); }
  | ENCODING IDENT params '{' stmts '}' { $$ = decl(ctx, QKD_DECL_ENCODING, @$, $2, @2, $3, $5, NULL); }
  | CIRCUIT IDENT params '{' stmts '}' { $$ = decl(ctx, QKD_DECL_CIRCUIT, @$, $2, @2, $3, $5, NULL); }
  | LOSS IDENT params '=' expr  { $$ = decl(ctx, QKD_DECL_LOSS, @$, $2, @2, $3, NULL, $5); }
  | error '}'                   { $$ = NULL; }
  ;

block_kind:
    DATASET                     { $$ = node(ctx, QKD_AST_DECL, @$); $$->decl_kind = QKD_DECL_DATASET; }
  | TEACHER                     { $$ = node(ctx, QKD_AST_DECL, @$); $$->decl_kind = QKD_DECL_TEACHER; }
  | STUDENT                     { $$ = node(ctx, QKD_AST_DECL, @$); $$->decl_kind = QKD_DECL_STUDENT; }
  | EXPERIMENT                  { $$ = node(ctx, QKD_AST_DECL, @$); $$->decl_kind = QKD_DECL_EXPERIMENT; }
  | GRID                        { $$ = node(ctx, QKD_AST_DECL, @$); $$->decl_kind = QKD_DECL_GRID; }
  ;

params:
    %empty                      { $$ = node(ctx, QKD_AST_LIST, @$); }
  | '(' ')'                     { $$ = node(ctx, QKD_AST_LIST, @$); $$->has_parens = 1; }
  | '(' idlist ')'              { $$ = $2; $$->has_parens = 1; }
  ;

idlist:
    IDENT                       { $$ = node(ctx, QKD_AST_LIST, @$); qkd_ast_push(A, $$, named(ctx, QKD_AST_IDENT, @1, $1, @1)); }
  | idlist ',' IDENT            { $$ = $1; qkd_ast_push(A, $$, named(ctx, QKD_AST_IDENT, @3, $3, @3)); }
  ;

fields:
    %empty                      { $$ = node(ctx, QKD_AST_LIST, @$); }
  | fields field                { $$ = $1; qkd_ast_push(A, $$, $2); }
  ;

field:
    FIELD expr                  { $$ = qkd_ast_set(named(ctx, QKD_AST_FIELD, @$, $1, @1), $2, NULL); }
  | IDENT '{' fields '}'        { $$ = named(ctx, QKD_AST_BLOCK, @$, $1, @1); $$->items = $3->items; $$->depth = $3->depth + 1; }
  | IDENT label '{' fields '}'  { /* a labelled block (grid axes): the label is an IDENT in b */
                                  $$ = named(ctx, QKD_AST_BLOCK, @$, $1, @1); $$->items = $4->items; $$->depth = $4->depth + 1;
                                  $$->b = named(ctx, QKD_AST_IDENT, @2, $2, @2); }
  ;

label: /* any word, keywords included (`axis dataset { … }`) */
    IDENT                       { $$ = $1; }
  | DATASET                     { $$ = "dataset"; }
  | NET                         { $$ = "net"; }
  | ENCODING                    { $$ = "encoding"; }
  | CIRCUIT                     { $$ = "circuit"; }
  | LOSS                        { $$ = "loss"; }
  | TEACHER                     { $$ = "teacher"; }
  | STUDENT                     { $$ = "student"; }
  | EXPERIMENT                  { $$ = "experiment"; }
  | GRID                        { $$ = "grid"; }
  | FOR                         { $$ = "for"; }
  | IN                          { $$ = "in"; }
  | USE                         { $$ = "use"; }
  ;

layers:
    %empty                      { $$ = node(ctx, QKD_AST_LIST, @$); }
  | layers layer                { $$ = $1; qkd_ast_push(A, $$, $2); }
  ;

layer:
    IDENT                       { $$ = named(ctx, QKD_AST_CALL, @$, $1, @1); }
  | IDENT '(' ')'               { $$ = named(ctx, QKD_AST_CALL, @$, $1, @1); $$->has_parens = 1; }
  | IDENT '(' args ')'          { $$ = named(ctx, QKD_AST_CALL, @$, $1, @1); $$->has_parens = 1; $$->items = $3->items; $$->depth = $3->depth + 1; }
  ;

stmts:
    %empty                      { $$ = node(ctx, QKD_AST_LIST, @$); }
  | stmts stmt                  { $$ = $1; qkd_ast_push(A, $$, $2); }
  ;

stmt:
    FOR IDENT IN expr '{' stmts '}' {
                                  $$ = qkd_ast_set(named(ctx, QKD_AST_FOR, @$, $2, @2), $4, NULL);
                                  $$->items = $6->items;
                                  if ($6->depth + 1 > $$->depth) $$->depth = $6->depth + 1;
                                }
  | IDENT '(' ')'               { $$ = named(ctx, QKD_AST_CALL, @$, $1, @1); $$->has_parens = 1; }
  | IDENT '(' args ')'          { $$ = named(ctx, QKD_AST_CALL, @$, $1, @1); $$->has_parens = 1; $$->items = $3->items; $$->depth = $3->depth + 1; }
  ;

args:
    arg                         { $$ = node(ctx, QKD_AST_LIST, @$); qkd_ast_push(A, $$, $1); }
  | args ',' arg                { $$ = $1; qkd_ast_push(A, $$, $3); }
  ;

arg:
    expr                        { $$ = qkd_ast_set(node(ctx, QKD_AST_ARG, @$), $1, NULL); }
  | FIELD expr                  { $$ = qkd_ast_set(named(ctx, QKD_AST_ARG, @$, $1, @1), $2, NULL); }
  ;

exprlist:
    expr                        { $$ = node(ctx, QKD_AST_LIST, @$); qkd_ast_push(A, $$, $1); }
  | exprlist ',' expr           { $$ = $1; qkd_ast_push(A, $$, $3); }
  ;

expr:
    INT                         { $$ = node(ctx, QKD_AST_NUM, @$); $$->num = $1; $$->is_int = 1; }
  | REAL                        { $$ = node(ctx, QKD_AST_NUM, @$); $$->num = $1; }
  | STRING                      { $$ = named(ctx, QKD_AST_STR, @$, $1, @1); }
  | IDENT                       { $$ = named(ctx, QKD_AST_IDENT, @$, $1, @1); }
  | IDENT '(' ')'               { $$ = named(ctx, QKD_AST_CALL, @$, $1, @1); $$->has_parens = 1; }
  | IDENT '(' args ')'          { $$ = named(ctx, QKD_AST_CALL, @$, $1, @1); $$->has_parens = 1; $$->items = $3->items; $$->depth = $3->depth + 1; }
  | IDENT '[' expr ']'          { $$ = qkd_ast_set(named(ctx, QKD_AST_INDEX, @$, $1, @1), $3, NULL); }
  | NET '{' layers '}'          { $$ = node(ctx, QKD_AST_NETLIT, @$); $$->items = $3->items; $$->depth = $3->depth + 1; }
  | '[' ']'                     { $$ = node(ctx, QKD_AST_LIST, @$); }
  | '[' exprlist ']'            { $$ = $2; $$->span = @$; }
  | '(' expr ')'                { $$ = $2; }
  | '-' expr %prec NEG          { $$ = qkd_ast_set(node(ctx, QKD_AST_NEG, @$), $2, NULL); }
  | expr '+' expr               { $$ = bin(ctx, '+', $1, $3, @$); }
  | expr '-' expr               { $$ = bin(ctx, '-', $1, $3, @$); }
  | expr '*' expr               { $$ = bin(ctx, '*', $1, $3, @$); }
  | expr '/' expr               { $$ = bin(ctx, '/', $1, $3, @$); }
  | expr '%' expr               { $$ = bin(ctx, '%', $1, $3, @$); }
  | expr '^' expr               { $$ = bin(ctx, '^', $1, $3, @$); }
  | expr DOTDOT expr            { $$ = qkd_ast_set(node(ctx, QKD_AST_RANGE, @$), $1, $3); }
  ;
%%

static void qkd_yyerror(YYLTYPE *loc, qkd_parse_ctx *ctx, const char *msg) {
  if (ctx->nesting_reported) return; /* the nesting error already explains it */
  if (strcmp(msg, "memory exhausted") == 0) msg = "program nested too deeply";
  qkd_diag_error(ctx->diag, *loc, "%s", msg);
}
