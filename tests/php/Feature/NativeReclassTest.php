<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

use PHPUnit\Framework\TestCase;

/**
 * RR\reclass() in a php process with the built extension loaded: an object becomes an instance
 * of a subclass in place, keeping its properties and every reference to it, and any class
 * whose objects would be laid out differently is refused with a ValueError naming it.
 */
final class NativeReclassTest extends TestCase
{
    private const PRELUDE = <<<'PHP'
        class Base {
            private int $secret = 1;
            protected array $list = [1, 2];
            public ?string $name = null;
            public function secret(): int { return $this->secret; }
            public function setSecret(int $v): void { $this->secret = $v; }
            public function who(): string { return 'base'; }
        }
        class Sub extends Base {
            public function who(): string { return 'sub of ' . parent::who() . ' ' . $this->secret(); }
        }
        class AddsProperty extends Base { public $more; }
        class Redeclares extends Base { protected array $list = [3]; }
        class Grandchild extends Sub {}
        abstract class AbstractSub extends Base {}
        final class SubOfException extends \Exception {}
        class MagicSub extends Base { public function __get($name) { return 1; } }
        class MagicBase { public function __isset($name) { return false; } }
        class SubOfMagic extends MagicBase { public function who(): string { return 'sub of magic'; } }
        function attempt(object $o, string $class): string {
            try { RR\reclass($o, $class); return 'done'; }
            catch (\Throwable $e) { return $e::class . ': ' . $e->getMessage(); }
        }
        PHP;

    public function testTheObjectBecomesTheSubclassAndKeepsItsStateAndReferences(): void
    {
        $out = Server::php(self::PRELUDE . <<<'PHP'
            $o = new Base();
            $o->setSecret(5);
            $o->name = 'kept';
            $holder = ['service' => $o];
            $read = \Closure::bind(fn () => $this->secret, $o, Base::class);
            $id = spl_object_id($o);
            RR\reclass($o, Sub::class);
            $o->setSecret(7);
            echo json_encode([
                $o::class, $o instanceof Base, $o->who(), $o->name, $read(), $holder['service'] === $o,
                spl_object_id($o) === $id, $holder['service']->who(),
            ]);
            PHP);
        self::assertSame(['Sub', true, 'sub of base 7', 'kept', 7, true, true, 'sub of base 7'], json_decode($out, true));
    }

    public function testClassesLaidOutDifferentlyAreRefusedAndTheObjectIsUnchanged(): void
    {
        $out = Server::php(self::PRELUDE . <<<'PHP'
            $o = new Base();
            $lines = [];
            foreach (['AddsProperty', 'Redeclares', 'Grandchild', 'AbstractSub', 'NoSuchClass', 'Base', 'SubOfException', 'MagicSub'] as $class) {
                $lines[] = attempt($o, $class);
            }
            $lines[] = $o::class . ' ' . $o->who();
            $lines[] = attempt(new \ArrayObject(), 'Sub');
            $e = new \Exception('x');
            $lines[] = attempt($e, 'SubOfException');
            // Both with the guards slot: allowed.
            $m = new MagicBase();
            $lines[] = attempt($m, 'SubOfMagic') . ' ' . $m->who();
            echo implode("\n", $lines);
            PHP);
        self::assertSame([
            'ValueError: RR\\reclass(): AddsProperty cannot replace Base as the class of the object: it declares properties',
            'ValueError: RR\\reclass(): Redeclares cannot replace Base as the class of the object: it declares properties',
            'ValueError: RR\\reclass(): Grandchild cannot replace Base as the class of the object: it does not directly extend it',
            'ValueError: RR\\reclass(): AbstractSub cannot replace Base as the class of the object: it is abstract, an interface, a trait or an enum',
            'ValueError: RR\\reclass(): class "NoSuchClass" does not exist',
            'ValueError: RR\\reclass(): Base cannot replace Base as the class of the object: it already is',
            'ValueError: RR\\reclass(): SubOfException cannot replace Base as the class of the object: it does not directly extend it',
            'ValueError: RR\\reclass(): MagicSub cannot replace Base as the class of the object: one of them has magic property methods (__get, __set, __isset, __unset) and the other not',
            'Base base',
            'ValueError: RR\\reclass(): Sub cannot replace ArrayObject as the class of the object: it does not directly extend it',
            'ValueError: RR\\reclass(): SubOfException cannot replace Exception as the class of the object: both must be classes declared in PHP',
            'done sub of magic',
        ], explode("\n", $out));
    }
}
