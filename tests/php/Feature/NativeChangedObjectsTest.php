<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

use PHPUnit\Framework\TestCase;

/**
 * RR\changed_objects() against what PHP itself finds, `(array) $object === $snapshot`, in a php
 * process with the built extension loaded.
 */
final class NativeChangedObjectsTest extends TestCase
{
    /** Classes and helpers the scripts below share. */
    private const PRELUDE = <<<'PHP'
        #[\AllowDynamicProperties]
        class Base { public $a = 1; protected $b = [1, 2]; private $c = 'base'; public ?Base $link = null; }
        class Child extends Base { private $c = 'child'; public int $typed; public $d = 0.5; }
        enum Suit { case Hearts; }
        function snap(object $o): array { $out = []; foreach ((array)$o as $k => $v) { $out[$k] = $v; } return $out; }
        function expected(array $objects, array $snaps): array {
            $out = [];
            foreach ($objects as $i => $o) {
                if (!is_object($o) || !is_array($snaps[$i]) || (array)$o !== $snaps[$i]) { $out[] = $i; }
            }
            return $out;
        }
        PHP;

    /** Runs the prelude and then `$code` with the extension (Server::php()). */
    private static function php(string $code): string
    {
        return Server::php(self::PRELUDE . $code);
    }

    public function testEachKindOfChangeIsFoundAndNothingElse(): void
    {
        $out = self::php(<<<'PHP'
            $o = [];
            for ($i = 0; $i < 12; $i++) { $o[] = $i % 2 ? new Child() : new Base(); }
            $o[] = new \ArrayObject([1]);   // internal class: always listed
            $o[] = 'not an object';
            $o[] = Suit::Hearts;            // enum: not a plain user object
            $s = array_map(fn ($x) => is_object($x) ? snap($x) : [], $o);
            $s[] = null; $o[] = new Base(); // a snapshot that is not an array
            $report = ['untouched' => RR\changed_objects($o, $s)];
            $o[0]->a = 2;                   // public
            (fn () => $this->b[] = 3)->call($o[1]);          // protected array, separated
            (fn () => $this->c = 'changed')->call($o[3]);    // the child's private
            (fn () => $this->c = 'changed')->bindTo($o[5], Base::class)(); // the parent's private
            $o[7]->dynamic = true;          // a dynamic property added
            $o[9]->typed = 1;               // a typed property initialized
            unset($o[2]->a);                // a declared property unset
            $o[4]->link = $o[6];            // another object
            $o[11]->d = '0.5';              // same value, other type
            $x = 1; $o[8]->a = &$x;         // a reference to an identical value: unchanged
            $report['changed'] = RR\changed_objects($o, $s);
            $report['php'] = expected($o, $s);
            $o[0]->a = 1; (fn () => $this->b = [1, 2])->call($o[1]); // put back (equal, not same array)
            $report['put back'] = array_values(array_intersect(RR\changed_objects($o, $s), [0, 1]));
            $x = 2;
            $report['reference changed'] = in_array(8, RR\changed_objects($o, $s), true);
            echo json_encode($report);
            PHP);
        $report = json_decode($out, true);
        self::assertSame([12, 13, 14, 15], $report['untouched'], 'only what PHP must compare itself');
        $expected = array_values(array_unique([...$report['php'], ...$report['untouched']]));
        sort($expected);
        self::assertSame($expected, $report['changed'], 'what (array) === finds, and those left to PHP');
        self::assertSame([0, 1, 2, 3, 4, 5, 7, 9, 11, 12, 13, 14, 15], $report['changed']);
        self::assertSame([], $report['put back'], 'equal values count as identical, as with ===');
        self::assertTrue($report['reference changed']);
    }

    public function testAgreesWithArrayCastOnRandomChanges(): void
    {
        $out = self::php(<<<'PHP'
            mt_srand(20261201);
            $disagree = 0; $changed = 0;
            for ($round = 0; $round < 200; $round++) {
                $o = []; $s = [];
                for ($i = 0; $i < 20; $i++) { $x = mt_rand(0, 1) ? new Child() : new Base(); $o[] = $x; $s[] = snap($x); }
                for ($k = mt_rand(0, 6); $k > 0; $k--) {
                    $x = $o[mt_rand(0, 19)];
                    match (mt_rand(0, 6)) {
                        0 => $x->a = mt_rand(0, 2),
                        1 => (fn () => $this->b = mt_rand(0, 1) ? [1, 2] : [2, 1])->call($x),
                        2 => $x->{'p' . mt_rand(0, 2)} = 1,
                        3 => $x->link = $o[mt_rand(0, 19)],
                        4 => $x instanceof Child ? $x->typed = 5 : $x->a = 1,
                        5 => (fn () => $this->c = mt_rand(0, 1) ? 'base' : 'other')->bindTo($x, Base::class)(),
                        6 => $x->a = (string)$x->a,
                    };
                }
                $native = RR\changed_objects($o, $s);
                $php = expected($o, $s);
                $disagree += $native === $php ? 0 : 1;
                $changed += count($php);
            }
            echo json_encode(['disagree' => $disagree, 'changed' => $changed]);
            PHP);
        $report = json_decode($out, true);
        self::assertSame(0, $report['disagree']);
        self::assertGreaterThan(200, $report['changed'], 'the rounds did change objects');
    }

    public function testArraysThatAreNotListsOrDifferInLengthAreRefused(): void
    {
        $out = self::php(<<<'PHP'
            $b = new Base();
            foreach ([[[1 => $b], [1 => snap($b)]], [[$b], []], [['x' => $b], ['x' => snap($b)]]] as [$o, $s]) {
                try { RR\changed_objects($o, $s); echo "accepted\n"; } catch (\ValueError $e) { echo $e->getMessage(), "\n"; }
            }
            PHP);
        self::assertSame(
            "RR\\changed_objects(): \$objects must be a list (keys 0 to count - 1)\n"
            . "RR\\changed_objects(): \$objects has 1 entries, \$snapshots 0\n"
            . "RR\\changed_objects(): \$objects must be a list (keys 0 to count - 1)\n",
            $out,
        );
    }
}
