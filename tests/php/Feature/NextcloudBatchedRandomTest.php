<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

use OC\Security\SecureRandom;
use PHPUnit\Framework\TestCase;
use RR\Nextcloud\BatchedSecureRandom;
use RR\Nextcloud\SpeedUps\RandomStrings;

/**
 * RR\Nextcloud\BatchedSecureRandom against Nextcloud's SecureRandom (from the install named by
 * RR_NEXTCLOUD_ROOT): every byte value picks each character of an alphabet equally often, the
 * strings have the asked length and only the alphabet's characters, and the bad inputs fail as
 * Nextcloud's do.
 */
final class NextcloudBatchedRandomTest extends TestCase
{
    public static function setUpBeforeClass(): void
    {
        $root = (string)getenv('RR_NEXTCLOUD_ROOT');
        if ($root === '' || !is_file($root . '/lib/private/Security/SecureRandom.php')) {
            self::markTestSkipped('set RR_NEXTCLOUD_ROOT to a Nextcloud install (SecureRandom comes from its lib/)');
        }
        require_once $root . '/lib/public/Security/ISecureRandom.php';
        require_once $root . '/lib/private/Security/SecureRandom.php';
    }

    /** @return iterable<string, array{string}> */
    public static function alphabets(): iterable
    {
        $bytes = implode('', array_map('chr', range(0, 255)));
        yield 'one character' => ['x'];
        yield 'two' => ['01'];
        yield 'three' => ['abc'];
        yield 'alphanumeric (62: 8 byte values dropped)' => ['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'];
        yield 'Nextcloud default (64)' => ['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'];
        yield '129 (127 byte values dropped)' => [substr($bytes, 0, 129)];
        yield '255' => [substr($bytes, 0, 255)];
        yield 'every byte' => [$bytes];
        yield 'a repeated character counts twice' => ['aab'];
    }

    /** @dataProvider alphabets */
    public function testEveryByteValuePicksEachPositionEquallyOften(string $characters): void
    {
        $count = \strlen($characters);
        $all = implode('', array_map('chr', range(0, 255)));
        $picked = BatchedSecureRandom::pick($all, $characters, PHP_INT_MAX);
        $perPosition = intdiv(256, $count);
        self::assertSame($perPosition * $count, \strlen($picked), 'the bytes above the largest multiple are dropped');
        // Byte b picks position b % count, in order: position i gets exactly $perPosition bytes.
        $expected = '';
        for ($b = 0; $b < $perPosition * $count; $b++) {
            $expected .= $characters[$b % $count];
        }
        self::assertSame($expected, $picked);
        $dropped = substr($all, $perPosition * $count);
        self::assertSame('', BatchedSecureRandom::pick($dropped, $characters, PHP_INT_MAX));
    }

    public function testPickStopsAtMax(): void
    {
        self::assertSame('bcd', BatchedSecureRandom::pick("\x01\x02\x03\x04\x05", 'abcdefgh', 3));
        self::assertSame('', BatchedSecureRandom::pick("\x01", 'ab', 0));
    }

    /** @dataProvider alphabets */
    public function testStringsHaveTheLengthAndOnlyTheAlphabet(string $characters): void
    {
        $random = new BatchedSecureRandom();
        foreach ([1, 20, 32, 128, 1000] as $length) {
            $value = $random->generate($length, $characters);
            self::assertSame($length, \strlen($value));
            self::assertSame($length, strspn($value, $characters), "only the alphabet's characters");
        }
    }

    public function testTheDefaultAlphabetIsNextcloudsAndValuesDiffer(): void
    {
        $random = new BatchedSecureRandom();
        $value = $random->generate(128);
        self::assertMatchesRegularExpression('#^[A-Za-z0-9+/]{128}$#', $value);
        self::assertNotSame($value, $random->generate(128));
    }

    public function testBadInputsFailAsNextcloudsDo(): void
    {
        foreach ([[0, 'ab'], [-3, 'ab'], [5, '']] as [$length, $characters]) {
            $expected = self::failure(static fn () => (new SecureRandom())->generate($length, $characters));
            self::assertNotNull($expected);
            self::assertSame($expected, self::failure(static fn () => (new BatchedSecureRandom())->generate($length, $characters)));
        }
    }

    public function testAnAlphabetOfMoreThan256CharactersGoesToNextcloudsCode(): void
    {
        $characters = str_repeat('ab', 200);
        $value = (new BatchedSecureRandom())->generate(50, $characters);
        self::assertMatchesRegularExpression('#^[ab]{50}$#', $value);
    }

    public function testTheInstalledSourceIsTheOneThisWasWrittenFor(): void
    {
        $known = (new \ReflectionClassConstant(RandomStrings::class, 'KNOWN'))->getValue();
        self::assertContains(RandomStrings::sourceHash(), $known, 'SecureRandom::generate() of this install is not a known version: the speed-up would not install');
    }

    private static function failure(callable $call): ?string
    {
        try {
            $call();
            return null;
        } catch (\Throwable $e) {
            return $e::class . ': ' . $e->getMessage();
        }
    }
}
