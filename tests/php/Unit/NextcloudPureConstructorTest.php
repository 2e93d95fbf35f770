<?php

declare(strict_types=1);

namespace RR\Tests\Unit;

use PHPUnit\Framework\TestCase;
use RR\Nextcloud\PureConstructor;
use RR\Tests\Fixtures\Pure;

require_once __DIR__ . '/../fixtures/pure_constructor_classes.php';

/**
 * RR\Nextcloud\PureConstructor: which constructors only store what they are given (a service
 * built from them may be kept across requests) and which could have read the request.
 */
final class NextcloudPureConstructorTest extends TestCase
{
    /** @return iterable<string, array{class-string}> */
    public static function pure(): iterable
    {
        yield 'no constructor' => [Pure\NoConstructor::class];
        yield 'promoted properties' => [Pure\Promoted::class];
        yield 'assignments of parameters, literals, constants' => [Pure\Assigns::class];
        yield 'the constant appName' => [Pure\WithAppName::class];
        yield 'parent constructor with a branch and pure functions' => [Pure\ThingMapper::class];
        yield 'its own CappedMemoryCache' => [Pure\OwnCache::class];
        yield 'the cache factory it is given' => [Pure\UsesCacheFactory::class];
        yield 'the cache factory in its promoted property' => [Pure\UsesCacheFactoryProperty::class];
    }

    /** @dataProvider pure */
    public function testAcceptsConstructorsThatOnlyStore(string $class): void
    {
        self::assertNull((new PureConstructor())->check($class)->refusal);
    }

    /** @return iterable<string, array{class-string, string}> */
    public static function impure(): iterable
    {
        yield 'method call' => [Pure\CallsMethod::class, 'calls a method'];
        yield 'nullsafe method call' => [Pure\CallsNullsafe::class, 'calls a method'];
        yield 'scalar parameter ($userId)' => [Pure\ScalarParameter::class, '$userId is not an object resolved by type'];
        yield 'union-typed parameter' => [Pure\UnionParameter::class, '$dep is not an object resolved by type'];
        yield 'new' => [Pure\CreatesObject::class, "uses 'new'"];
        yield 'static property' => [Pure\ReadsStatic::class, 'static member'];
        yield 'superglobal' => [Pure\ReadsSuperglobal::class, 'reads $_SERVER'];
        yield 'impure function' => [Pure\CallsImpureFunction::class, 'calls time()'];
        yield 'static method' => [Pure\CallsStatic::class, 'static member'];
        yield 'closure' => [Pure\MakesClosure::class, "uses 'fn'"];
        yield 'method call inside a string' => [Pure\Interpolates::class, 'calls a method'];
        yield 'impure parent constructor, called' => [Pure\ImpureChild::class, 'calls a method'];
        yield 'impure parent constructor, inherited' => [Pure\InheritsImpure::class, 'calls a method'];
        yield 'destructor' => [Pure\HasDestructor::class, 'destructor'];
        yield 'another method of the cache factory' => [Pure\CacheFactoryOtherMethod::class, 'calls a method'];
        yield 'a cache factory parameter assigned something else' => [Pure\CacheFactoryReassigned::class, 'calls a method'];
        yield 'a nullable cache factory' => [Pure\NullableCacheFactory::class, 'calls a method'];
        yield 'a cache factory method on another type' => [Pure\CacheMethodOnAnotherParameter::class, 'calls a method'];
        yield 'a cache factory parameter rebound by foreach' => [Pure\CacheFactoryRebound::class, 'calls a method'];
        yield 'a cache factory parameter changed through a reference' => [Pure\CacheFactoryByReference::class, 'calls a method'];
        yield 'another object\'s property' => [Pure\ReadsAnotherObjectsProperty::class, 'reads a property of another object'];
        yield 'internal parent class' => [Pure\InternalParent::class, 'internal class ArrayObject'];
        yield 'interface' => [Pure\Dep::class, 'not instantiable'];
        yield 'unknown class' => ['RR\Tests\Fixtures\Pure\Missing', 'not a loaded class'];
    }

    /** @dataProvider impure */
    public function testRejectsConstructorsThatDoMore(string $class, string $why): void
    {
        $verdict = (new PureConstructor())->check($class);
        self::assertFalse($verdict->isAccepted(), "{$class} must not be accepted");
        self::assertStringContainsString($why, (string)$verdict->refusal);
    }

    public function testAFactoryPassesScalarsItself(): void
    {
        $pure = new PureConstructor();
        self::assertFalse($pure->check(Pure\ScalarParameter::class)->isAccepted());
        self::assertTrue($pure->check(Pure\ScalarParameter::class, byFactory: true)->isAccepted());
        self::assertFalse($pure->check(Pure\CallsMethod::class, byFactory: true)->isAccepted());
    }
}
