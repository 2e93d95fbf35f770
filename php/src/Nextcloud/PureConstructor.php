<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/**
 * Decides, by reading a class's source, whether building it with Nextcloud's reflection
 * fallback (SimpleContainer::buildClass()) gives an object that depends on nothing but the
 * objects it is given: every constructor parameter is an object resolved by type (or the
 * container's constant `appName`), and every constructor in the chain only stores what it is
 * given, literals, constants and results of a few pure functions. It calls no method (but a
 * few of the cache factory's, CACHE_FACTORY_METHODS), reads no other object's property, no
 * static, global or superglobal, creates nothing (but a per-request memory cache), includes
 * nothing.
 *
 * Such a constructor cannot have read the request, the session or the user: an instance built
 * between requests is the same, property for property, as one built inside any request from the
 * same dependencies. Containers uses this to keep such services across requests.
 */
final class PureConstructor
{
    /** Container entries a builtin parameter may be resolved from: the same in every request. */
    private const CONSTANT_PARAMETERS = ['appName' => true, 'AppName' => true];

    /** Functions that compute from their arguments only. */
    private const PURE_FUNCTIONS = [
        'get_class' => true, 'str_replace' => true, 'strtolower' => true, 'strtoupper' => true,
        'substr' => true, 'trim' => true, 'rtrim' => true, 'ltrim' => true, 'sprintf' => true,
        'is_null' => true, 'count' => true, 'array_merge' => true, 'in_array' => true,
        'explode' => true, 'implode' => true, 'str_contains' => true, 'str_starts_with' => true,
        'str_ends_with' => true, 'strlen' => true, 'array_keys' => true, 'array_values' => true,
        'max' => true, 'min' => true, 'intval' => true, 'is_string' => true, 'is_array' => true,
    ];

    /**
     * Methods of Nextcloud's cache factory (OCP\ICacheFactory) a constructor may call on the
     * factory it is given: each answers from the factory's configuration, or makes a cache
     * object of its own (Containers accepts only caches whose entries live outside the worker,
     * in APCu, Redis or Memcached as under php-fpm, or a per-request memory cache it empties).
     */
    private const CACHE_FACTORY_METHODS = [
        'isavailable' => true, 'islocalcacheavailable' => true, 'createlocal' => true,
        'createdistributed' => true, 'createinmemory' => true,
    ];

    /** Tokens that end the question: the constructor does more than store what it is given. */
    private const FORBIDDEN_TOKENS = [
        T_NEW, T_FUNCTION, T_FN, T_INCLUDE, T_INCLUDE_ONCE, T_REQUIRE, T_REQUIRE_ONCE, T_EVAL,
        T_ECHO, T_PRINT, T_EXIT, T_GLOBAL, T_THROW, T_YIELD, T_YIELD_FROM, T_INLINE_HTML,
        T_UNSET, T_GOTO, T_CLONE,
    ];

    /** @var array<string, Verdict> per class (and whether by a factory) */
    private array $verdicts = [];

    /**
     * Accepted when the class qualifies; else refused with why not (for the promotion log). With
     * `$byFactory`, the parameters are not looked at: a reviewed factory passes them
     * (Containers::SAFE_FACTORIES).
     */
    public function check(string $class, bool $byFactory = false): Verdict
    {
        $id = $class . ($byFactory ? "\0factory" : '');
        if (!isset($this->verdicts[$id])) {
            $why = $this->judge($class, $byFactory);
            $this->verdicts[$id] = $why === null ? Verdict::accepted() : Verdict::refused($why);
        }
        return $this->verdicts[$id];
    }

    /** Null when the class qualifies, else why not. */
    private function judge(string $class, bool $byFactory): ?string
    {
        if (!class_exists($class, false) && !interface_exists($class, false)) {
            return 'not a loaded class';
        }
        $reflection = new \ReflectionClass($class);
        if (!$reflection->isInstantiable()) {
            return 'not instantiable';
        }
        for ($c = $reflection; $c !== false; $c = $c->getParentClass()) {
            if ($c->isInternal()) {
                return "internal class {$c->getName()} in its parents";
            }
        }
        if ($reflection->hasMethod('__destruct')) {
            return 'has a destructor (php-fpm runs it at the end of each request)';
        }
        $constructor = $reflection->getConstructor();
        if ($constructor === null) {
            return null;
        }
        foreach ($byFactory ? [] : $constructor->getParameters() as $parameter) {
            $type = $parameter->getType();
            if ($type instanceof \ReflectionNamedType && !$type->isBuiltin()) {
                continue;
            }
            if ($type instanceof \ReflectionNamedType && isset(self::CONSTANT_PARAMETERS[$parameter->getName()])) {
                continue;
            }
            return "parameter \${$parameter->getName()} is not an object resolved by type";
        }
        return $this->body($constructor);
    }

    /** Null when a constructor's body (and every parent constructor it calls) only stores, else why not. */
    private function body(\ReflectionMethod $constructor): ?string
    {
        $file = $constructor->getFileName();
        if ($file === false) {
            return 'no source';
        }
        $start = (int)$constructor->getStartLine();
        $end = (int)$constructor->getEndLine();
        // Only the constructor's lines are read (a whole file's tokens take ~100 bytes each,
        // and PHP keeps the memory of such a peak); padded so that line numbers stay.
        $lines = array_slice(file($file) ?: [], $start - 1, $end - $start + 1);
        $tokens = self::significant(\PhpToken::tokenize('<?php ' . str_repeat("\n", $start - 1) . implode('', $lines)));
        $i = self::find($tokens, $start, $end);
        if ($i === null) {
            return "constructor of {$constructor->getDeclaringClass()->getName()} not found in its source";
        }
        // Past the parameter list (its default values are constant expressions, checked by PHP).
        $depth = 0;
        for (; $i < count($tokens); $i++) {
            if ($tokens[$i]->text === '(') {
                $depth++;
            } elseif ($tokens[$i]->text === ')' && --$depth === 0) {
                break;
            }
        }
        $i++;
        if (($tokens[$i]->text ?? '') === ':') {
            return 'constructor with a return type';
        }
        if (($tokens[$i]->text ?? '') !== '{') {
            return 'abstract constructor';
        }
        $depth = 0;
        $n = count($tokens);
        for (; $i < $n; $i++) {
            $t = $tokens[$i];
            $text = $t->text;
            if ($text === '{' || $t->is(T_DOLLAR_OPEN_CURLY_BRACES)) {
                $depth++;
                continue;
            }
            if ($text === '}') {
                if (--$depth === 0) {
                    return null;
                }
                continue;
            }
            if ($t->is(T_NEW) && self::newMemoryCache($tokens, $i)) {
                // `new CappedMemoryCache(...)`: an empty per-request cache of its own, which
                // Containers empties after every request as it does those of boot services.
                $i++;
                continue;
            }
            if ($t->is(self::FORBIDDEN_TOKENS) || $text === '`') {
                return "constructor uses '{$text}' (line {$t->line})";
            }
            $next = $tokens[$i + 1]->text ?? '';
            if ($t->is(T_VARIABLE)) {
                if (str_starts_with($text, '$_') || $text === '$GLOBALS') {
                    return "constructor reads {$text} (line {$t->line})";
                }
                if ($next === '(') {
                    return "constructor calls a closure (line {$t->line})";
                }
                continue;
            }
            if ($t->is([T_OBJECT_OPERATOR, T_NULLSAFE_OBJECT_OPERATOR])) {
                if (($tokens[$i + 2]->text ?? '') === '(' || !$tokens[$i + 1]->is(T_STRING)) {
                    if (self::cacheFactoryCall($constructor, $tokens, $i)) {
                        $i++;
                        continue;
                    }
                    return "constructor calls a method (line {$t->line})";
                }
                if ($tokens[$i - 1]->text !== '$this') {
                    // Another object's property (a magic __get() may compute it, and it may
                    // hold what the request put there): only its own are read.
                    return "constructor reads a property of another object (line {$t->line})";
                }
                $i++;
                continue;
            }
            if ($t->is(T_DOUBLE_COLON)) {
                $member = $tokens[$i + 1] ?? null;
                $owner = strtolower($tokens[$i - 1]->text);
                if ($member !== null && $member->text === '__construct' && $owner === 'parent') {
                    $parent = $constructor->getDeclaringClass()->getParentClass();
                    $parentConstructor = $parent === false ? null : $parent->getConstructor();
                    if ($parentConstructor === null) {
                        return 'calls a parent constructor that does not exist';
                    }
                    $why = $this->body($parentConstructor);
                    if ($why !== null) {
                        return $why;
                    }
                    $i++;
                    continue;
                }
                if ($member !== null && ($member->is(T_CLASS) || ($member->is(T_STRING) && ($tokens[$i + 2]->text ?? '') !== '('))) {
                    $i++;
                    continue; // Foo::class, Foo::CONSTANT
                }
                return "constructor uses a static member (line {$t->line})";
            }
            if ($t->is([T_STRING, T_NAME_FULLY_QUALIFIED, T_NAME_QUALIFIED, T_NAME_RELATIVE, T_STATIC])) {
                if ($next === '(') {
                    $name = strtolower(ltrim($text, '\\'));
                    if (!(self::PURE_FUNCTIONS[$name] ?? false)) {
                        return "constructor calls {$text}() (line {$t->line})";
                    }
                }
                continue;
            }
            if (($text === ')' || $text === ']') && $next === '(') {
                return "constructor calls a computed callable (line {$t->line})";
            }
        }
        return 'constructor body not closed';
    }

    /**
     * Whether the method call at the `->` of `$tokens[$i]` is one of CACHE_FACTORY_METHODS on
     * a cache factory: a parameter declared as one and never assigned in the constructor
     * (`$cacheFactory->createLocal(`), or a property of the class declared as one
     * (`$this->cacheFactory->createInMemory(`).
     *
     * @param list<\PhpToken> $tokens
     */
    private static function cacheFactoryCall(\ReflectionMethod $constructor, array $tokens, int $i): bool
    {
        $method = $tokens[$i + 1] ?? null;
        if ($method === null || !$method->is(T_STRING) || ($tokens[$i + 2]->text ?? '') !== '('
            || !isset(self::CACHE_FACTORY_METHODS[strtolower($method->text)])) {
            return false;
        }
        $receiver = $tokens[$i - 1];
        if ($receiver->is(T_VARIABLE) && $receiver->text !== '$this') {
            foreach ($constructor->getParameters() as $parameter) {
                if ('$' . $parameter->getName() === $receiver->text) {
                    return self::isCacheFactory($parameter->getType())
                        && !$parameter->isPassedByReference()
                        && !self::assigned($tokens, $receiver->text);
                }
            }
            return false;
        }
        if ($receiver->is(T_STRING) && ($tokens[$i - 2]->text ?? '') === '->' && ($tokens[$i - 3]->text ?? '') === '$this') {
            $class = $constructor->getDeclaringClass();
            return $class->hasProperty($receiver->text)
                && self::isCacheFactory($class->getProperty($receiver->text)->getType());
        }
        return false;
    }

    private static function isCacheFactory(?\ReflectionType $type): bool
    {
        return $type instanceof \ReflectionNamedType && !$type->allowsNull()
            && in_array($type->getName(), [\OCP\ICacheFactory::class, \OC\Memcache\Factory::class], true);
    }

    /**
     * Whether the variable is assigned anywhere in the tokens (`$x = `, `$x .= `, `$x ??= `...),
     * or bound in a way that may assign it (a foreach, a destructuring, a reference), or passed
     * on (in a list, an argument).
     *
     * @param list<\PhpToken> $tokens
     */
    private static function assigned(array $tokens, string $variable): bool
    {
        $comparisons = ['==' => true, '===' => true, '!=' => true, '!==' => true, '<=' => true, '>=' => true, '<=>' => true];
        foreach ($tokens as $k => $t) {
            if ($t->is(T_VARIABLE) && $t->text === $variable) {
                $next = $tokens[$k + 1]->text ?? '';
                if (str_ends_with($next, '=') && !isset($comparisons[$next])) {
                    return true;
                }
                // `foreach (... as $x)`, `[$x] = ...`, `list(, $x) = ...`, `$y = &$x`: bound
                // to something else, or to a reference that may be.
                $previous = $tokens[$k - 1] ?? null;
                if ($previous !== null && ($previous->is(T_AS) || in_array($previous->text, ['&', '[', ',', '=>'], true)
                    || ($previous->text === '(' && ($tokens[$k - 2] ?? null)?->is(T_LIST)))) {
                    return true;
                }
            }
        }
        return false;
    }

    /** @param list<\PhpToken> $tokens */
    private static function newMemoryCache(array $tokens, int $i): bool
    {
        $name = $tokens[$i + 1] ?? null;
        if ($name === null || !$name->is([T_STRING, T_NAME_FULLY_QUALIFIED, T_NAME_QUALIFIED])) {
            return false;
        }
        $parts = explode('\\', $name->text);
        return end($parts) === 'CappedMemoryCache';
    }

    /**
     * The index of the `function` token of `__construct` declared between the two lines.
     *
     * @param list<\PhpToken> $tokens
     */
    private static function find(array $tokens, int $from, int $to): ?int
    {
        foreach ($tokens as $i => $t) {
            if ($t->line < $from) {
                continue;
            }
            if ($t->line > $to) {
                return null;
            }
            if ($t->is(T_FUNCTION) && strtolower($tokens[$i + 1]->text ?? '') === '__construct') {
                return $i + 2;
            }
        }
        return null;
    }

    /**
     * @param list<\PhpToken> $tokens
     * @return list<\PhpToken> without whitespace, comments and attributes' contents
     */
    private static function significant(array $tokens): array
    {
        $out = [];
        foreach ($tokens as $t) {
            if (!$t->isIgnorable()) {
                $out[] = $t;
            }
        }
        return $out;
    }
}
