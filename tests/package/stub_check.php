<?php

/**
 * Checks that a stub file declares exactly the API of the loaded rr extension.
 *
 *     php -d extension=path/to/rr.so tests/stub_check.php stubs/rr.stub.php
 *
 * The stub cannot be included here, where the extension already defines its
 * classes, so a second php started with -n (no extensions) includes and reflects
 * it, and sends back the same description this process builds for the extension.
 * Prints one line per mismatch, then "N passed, N failed"; exits 1 on a mismatch
 * and 2 when the check cannot run.
 */

declare(strict_types=1);

namespace RRStubCheck;

use ReflectionClass;
use ReflectionClassConstant;
use ReflectionExtension;
use ReflectionFunctionAbstract;
use ReflectionMethod;
use ReflectionParameter;
use ReflectionProperty;
use ReflectionType;
use Throwable;

/** Stubs in php-src style write `= UNKNOWN` for values they do not spell out. */
const UNKNOWN_VALUE = "\0unknown\0";
const UNKNOWN_TEXT = '<unknown>';

/**
 * One description shape for both sides, so comparing is a walk over two arrays.
 * Names of classes and functions are case-insensitive in PHP: keys are lowercased.
 */
final class Describe
{
    /**
     * @param list<string> $classes
     * @param list<string> $functions
     * @param array<string, mixed> $constants
     */
    public static function api(array $classes, array $functions, array $constants): array
    {
        $api = ['classes' => [], 'functions' => [], 'constants' => []];
        foreach ($classes as $name) {
            $class = new ReflectionClass($name);
            $api['classes'][strtolower($class->getName())] = self::class($class);
        }
        foreach ($functions as $name) {
            $function = new \ReflectionFunction($name);
            $api['functions'][strtolower($function->getName())] = self::callable($function, null);
        }
        foreach ($constants as $name => $value) {
            $api['constants'][self::constantKey($name)] = ['name' => $name, 'value' => self::value($value)];
        }
        ksort($api['classes']);
        ksort($api['functions']);
        ksort($api['constants']);

        return $api;
    }

    private static function class(ReflectionClass $class): array
    {
        $kind = match (true) {
            $class->isInterface() => 'interface',
            $class->isTrait() => 'trait',
            $class->isEnum() => 'enum',
            default => 'class',
        };
        $interfaces = $class->getInterfaceNames();
        sort($interfaces, SORT_STRING | SORT_FLAG_CASE);
        $own = static fn ($member): bool => $member->getDeclaringClass()->getName() === $class->getName();

        $constants = [];
        foreach (array_filter($class->getReflectionConstants(), $own) as $constant) {
            $constants[$constant->getName()] = self::classConstant($constant);
        }
        $methods = [];
        foreach (array_filter($class->getMethods(), $own) as $method) {
            $methods[strtolower($method->getName())] = self::callable($method, $class);
        }
        $properties = [];
        foreach (array_filter($class->getProperties(), $own) as $property) {
            $properties[$property->getName()] = self::property($property, $class);
        }
        ksort($constants);
        ksort($methods);
        ksort($properties);

        return [
            'name' => $class->getName(),
            'kind' => $kind,
            'final' => $class->isFinal(),
            'abstract' => $kind === 'class' && $class->isAbstract(),
            'readonly' => $class->isReadOnly(),
            'parent' => $class->getParentClass() ? $class->getParentClass()->getName() : null,
            'interfaces' => implode(', ', $interfaces),
            'backing type' => $class->isEnum() ? self::type((new \ReflectionEnum($class->getName()))->getBackingType(), $class) : null,
            'constants' => $constants,
            'methods' => $methods,
            'properties' => $properties,
        ];
    }

    private static function classConstant(ReflectionClassConstant $constant): array
    {
        return [
            'name' => $constant->getName(),
            'visibility' => self::visibility($constant),
            'final' => $constant->isFinal(),
            'value' => $constant->isEnumCase() ? 'enum case' : self::value($constant->getValue()),
        ];
    }

    private static function callable(ReflectionFunctionAbstract $function, ?ReflectionClass $scope): array
    {
        $described = ['name' => $function->getName()];
        if ($function instanceof ReflectionMethod) {
            $described += [
                'visibility' => self::visibility($function),
                'static' => $function->isStatic(),
                'final' => $function->isFinal(),
                'abstract' => $function->isAbstract(),
            ];
        }
        $described['return type'] = self::type($function->getReturnType() ?? $function->getTentativeReturnType(), $scope);
        $described['returns by reference'] = $function->returnsReference();
        $described['params'] = array_map(
            static fn (ReflectionParameter $param): array => self::parameter($param, $scope),
            $function->getParameters(),
        );

        return $described;
    }

    private static function parameter(ReflectionParameter $param, ?ReflectionClass $scope): array
    {
        return [
            'name' => '$' . $param->getName(),
            'type' => self::type($param->getType(), $scope),
            'optional' => $param->isOptional(),
            'default' => self::defaultValue($param),
            'by reference' => $param->isPassedByReference(),
            'variadic' => $param->isVariadic(),
        ];
    }

    private static function property(ReflectionProperty $property, ReflectionClass $scope): array
    {
        return [
            'visibility' => self::visibility($property),
            'static' => $property->isStatic(),
            'readonly' => $property->isReadOnly(),
            'type' => self::type($property->getType(), $scope),
        ];
    }

    private static function defaultValue(ReflectionParameter $param): ?string
    {
        if (!$param->isDefaultValueAvailable()) {
            return null;
        }
        try {
            return self::value($param->getDefaultValue());
        } catch (Throwable) {
            // A constant expression this process cannot evaluate: compare its text.
            return $param->isDefaultValueConstant() ? $param->getDefaultValueConstantName() : UNKNOWN_TEXT;
        }
    }

    private static function value(mixed $value): string
    {
        // Newlines shown as \n, so that a mismatch stays one line.
        return $value === UNKNOWN_VALUE ? UNKNOWN_TEXT : str_replace("\n", '\n', var_export($value, true));
    }

    private static function type(?ReflectionType $type, ?ReflectionClass $scope): ?string
    {
        if ($type === null) {
            return null;
        }
        $text = (string) $type;
        if ($scope !== null) {
            $text = preg_replace('/(?<![\w\\\\])self(?![\w\\\\])/i', $scope->getName(), $text);
        }

        return $text;
    }

    private static function visibility(ReflectionMethod|ReflectionProperty|ReflectionClassConstant $member): string
    {
        return match (true) {
            $member->isPrivate() => 'private',
            $member->isProtected() => 'protected',
            default => 'public',
        };
    }

    /** PHP lowercases the namespace of a constant's name but not the constant itself. */
    private static function constantKey(string $name): string
    {
        $cut = strrpos($name, '\\');

        return $cut === false ? $name : strtolower(substr($name, 0, $cut)) . substr($name, $cut);
    }
}

/** Walks both descriptions; every class, member, function, parameter and constant is one item. */
final class Compare
{
    private int $passed = 0;
    private int $failed = 0;

    public function api(array $stub, array $ext): void
    {
        $this->each('const', $stub['constants'], $ext['constants'], function (string $item, array $s, array $e): array {
            return self::fields(['value'], $s, $e, caseInsensitive: []);
        });
        $this->each('function', $stub['functions'], $ext['functions'], function (string $item, array $s, array $e): array {
            return $this->callable($item, $s, $e);
        });
        $this->each('class', $stub['classes'], $ext['classes'], function (string $item, array $s, array $e): array {
            return $this->class($s, $e);
        });
    }

    public function report(): int
    {
        echo "{$this->passed} passed, {$this->failed} failed\n";

        return $this->failed === 0 ? 0 : 1;
    }

    /**
     * Pairs the entries of two maps by key and compares each pair with $check,
     * which returns the mismatches of that item (and may record nested items).
     */
    private function each(string $kind, array $stub, array $ext, callable $check, string $prefix = ''): void
    {
        foreach (array_keys($stub + $ext) as $key) {
            $item = $this->itemName($kind, $prefix, $stub[$key] ?? $ext[$key], (string) $key);
            if (!isset($ext[$key])) {
                $this->record($item, ['declared in the stub, missing from the extension']);
            } elseif (!isset($stub[$key])) {
                $this->record($item, ['in the extension, missing from the stub']);
            } else {
                $this->record($item, $check($item, $stub[$key], $ext[$key]));
            }
        }
    }

    private function itemName(string $kind, string $prefix, array $entry, string $key): string
    {
        $name = $entry['name'] ?? $key;

        return match ($kind) {
            'function', 'method' => "{$prefix}{$name}()",
            'property' => "{$prefix}\${$name}",
            'class' => ($entry['kind'] ?? 'class') . " {$name}",
            'const' => $prefix === '' ? "const {$name}" : "{$prefix}{$name}",
            default => "{$prefix}{$name}",
        };
    }

    private function class(array $stub, array $ext): array
    {
        $prefix = $stub['name'] . '::';
        $this->each('const', $stub['constants'], $ext['constants'], function (string $item, array $s, array $e): array {
            return self::fields(['visibility', 'final', 'value'], $s, $e, caseInsensitive: []);
        }, $prefix);
        $this->each('method', $stub['methods'], $ext['methods'], function (string $item, array $s, array $e): array {
            return $this->callable($item, $s, $e);
        }, $prefix);
        $this->each('property', $stub['properties'], $ext['properties'], function (string $item, array $s, array $e): array {
            return self::fields(['visibility', 'static', 'readonly', 'type'], $s, $e, caseInsensitive: ['type']);
        }, $prefix);

        return self::fields(
            ['name', 'kind', 'final', 'abstract', 'readonly', 'parent', 'interfaces', 'backing type'],
            $stub,
            $ext,
            caseInsensitive: ['parent', 'interfaces'],
        );
    }

    private function callable(string $item, array $stub, array $ext): array
    {
        $count = max(count($stub['params']), count($ext['params']));
        for ($i = 0; $i < $count; $i++) {
            $s = $stub['params'][$i] ?? null;
            $e = $ext['params'][$i] ?? null;
            $param = "{$item} parameter #" . ($i + 1) . ' (' . ($s ?? $e)['name'] . ')';
            $this->record($param, match (true) {
                $e === null => ['declared in the stub, missing from the extension'],
                $s === null => ['in the extension, missing from the stub'],
                default => self::fields(
                    ['name', 'type', 'optional', 'default', 'by reference', 'variadic'],
                    $s,
                    $e,
                    caseInsensitive: ['type'],
                ),
            });
        }
        $fields = ['name', 'visibility', 'static', 'final', 'abstract', 'return type', 'returns by reference'];

        return self::fields(array_intersect($fields, array_keys($stub)), $stub, $ext, caseInsensitive: ['return type']);
    }

    /**
     * @param list<string> $fields
     * @param list<string> $caseInsensitive fields holding class names
     * @return list<string>
     */
    private static function fields(array $fields, array $stub, array $ext, array $caseInsensitive): array
    {
        $mismatches = [];
        foreach ($fields as $field) {
            $s = $stub[$field] ?? null;
            $e = $ext[$field] ?? null;
            if ($field === 'value' || $field === 'default') {
                if ($s === UNKNOWN_TEXT || $e === UNKNOWN_TEXT) {
                    continue;
                }
            }
            $same = in_array($field, $caseInsensitive, true) && is_string($s) && is_string($e)
                ? strtolower($s) === strtolower($e)
                : $s === $e;
            if (!$same) {
                $mismatches[] = "{$field}: stub " . self::show($s) . ', extension ' . self::show($e);
            }
        }

        return $mismatches;
    }

    private static function show(mixed $value): string
    {
        return match (true) {
            $value === null => 'none',
            $value === '' => 'none',
            is_bool($value) => $value ? 'yes' : 'no',
            default => (string) $value,
        };
    }

    /** @param list<string> $mismatches */
    private function record(string $item, array $mismatches): void
    {
        if ($mismatches === []) {
            $this->passed++;

            return;
        }
        $this->failed++;
        foreach ($mismatches as $mismatch) {
            echo "{$item}: {$mismatch}\n";
        }
    }
}

/** In the -n child: include the stub and print the description of what it declared. */
function describeStub(string $stub): void
{
    define('UNKNOWN', UNKNOWN_VALUE);
    $declared = static fn (): array => array_merge(get_declared_classes(), get_declared_interfaces(), get_declared_traits());
    $classesBefore = $declared();
    $functionsBefore = get_defined_functions()['user'];
    $constantsBefore = get_defined_constants(true)['user'] ?? [];

    (static function (string $stub): void {
        require $stub;
    })($stub);

    $api = Describe::api(
        array_values(array_diff($declared(), $classesBefore)),
        array_values(array_diff(get_defined_functions()['user'], $functionsBefore)),
        array_diff_key(get_defined_constants(true)['user'] ?? [], $constantsBefore),
    );
    echo json_encode($api, JSON_THROW_ON_ERROR | JSON_INVALID_UTF8_SUBSTITUTE | JSON_PRETTY_PRINT), "\n";
}

function describeStubInChild(string $stub): array
{
    $command = [PHP_BINARY, '-n', '-d', 'display_errors=stderr', '-d', 'error_reporting=-1', __FILE__, '--describe-stub', $stub];
    $process = proc_open($command, [1 => ['pipe', 'w']], $pipes);
    if ($process === false) {
        fail('could not start ' . PHP_BINARY);
    }
    $json = stream_get_contents($pipes[1]);
    fclose($pipes[1]);
    $status = proc_close($process);
    if ($status !== 0) {
        fail("reflecting {$stub} in `php -n` failed (exit {$status}); see the error above");
    }

    return json_decode($json, true, flags: JSON_THROW_ON_ERROR);
}

function fail(string $message): never
{
    fwrite(STDERR, "stub_check: {$message}\n");
    exit(2);
}

function main(array $argv): int
{
    if (($argv[1] ?? null) === '--describe-stub' && isset($argv[2])) {
        describeStub($argv[2]);

        return 0;
    }
    $stub = $argv[1] ?? fail('usage: php -d extension=rr.so tests/stub_check.php stubs/rr.stub.php');
    if (!is_file($stub)) {
        fail("no such stub file: {$stub}");
    }
    if (!extension_loaded('rr')) {
        fail('the rr extension is not loaded: run php -d extension=/path/to/rr.so ' . $argv[0] . ' ' . $stub);
    }
    $extension = new ReflectionExtension('rr');
    $ext = Describe::api(
        array_keys($extension->getClasses()),
        array_keys($extension->getFunctions()),
        $extension->getConstants(),
    );
    $compare = new Compare();
    $compare->api(describeStubInChild($stub), $ext);

    return $compare->report();
}

exit(main($argv));
