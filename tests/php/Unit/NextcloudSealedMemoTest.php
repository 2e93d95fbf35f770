<?php

declare(strict_types=1);

namespace RR\Tests\Unit;

use PHPUnit\Framework\TestCase;
use RR\Nextcloud\SealedMemo;

/**
 * RR\Nextcloud\SealedMemo: a result comes back only for the same secret and inputs, is held
 * sealed (neither it nor the secret is in the memo's memory), expires, and the oldest entry
 * goes first when full.
 */
final class NextcloudSealedMemoTest extends TestCase
{
    private int $now = 1_000_000;

    private function memo(int $capacity = 8, int $ttl = 60): SealedMemo
    {
        return new SealedMemo($capacity, $ttl, fn (): int => $this->now);
    }

    public function testTheSameSecretAndInputsGiveTheResultBackNothingElseDoes(): void
    {
        $memo = $this->memo();
        self::assertNull($memo->get('token-a', 'row-1'), 'empty');
        $memo->put('token-a', 'row-1', 'login password of a');
        self::assertSame('login password of a', $memo->get('token-a', 'row-1'));
        self::assertSame('login password of a', $memo->get('token-a', 'row-1'), 'asked again');
        self::assertNull($memo->get('token-b', 'row-1'), 'another secret, same inputs');
        self::assertNull($memo->get('token-a', 'row-2'), 'same secret, other inputs (a changed row)');
        self::assertNull($memo->get('token-a', "row-1\0"), 'inputs differ by a byte');
        self::assertSame(1, $memo->count());

        $memo->put('token-a', 'row-1', 'new password');
        self::assertSame('new password', $memo->get('token-a', 'row-1'), 'put again replaces');
        self::assertSame(1, $memo->count());
        self::assertSame('', ($this->withEmpty($memo))->get('token-e', 'row-e'), 'an empty result is a result');
    }

    private function withEmpty(SealedMemo $memo): SealedMemo
    {
        $memo->put('token-e', 'row-e', '');
        return $memo;
    }

    public function testNeitherTheResultNorTheSecretIsHeldInTheClear(): void
    {
        $memo = $this->memo();
        $secret = 'app-password-' . bin2hex(random_bytes(8));
        $result = 'the user login password ' . bin2hex(random_bytes(8));
        $memo->put($secret, 'encrypted row', $result);
        $held = serialize((fn (): array => $this->entries)->call($memo));
        self::assertStringNotContainsString($result, $held);
        self::assertStringNotContainsString($secret, $held);
        self::assertStringNotContainsString('encrypted row', $held);
        self::assertSame($result, $memo->get($secret, 'encrypted row'));
    }

    public function testATamperedEntryIsDroppedNotServed(): void
    {
        $memo = $this->memo();
        $memo->put('token', 'row', 'password');
        (function (): void {
            foreach ($this->entries as $id => $entry) {
                $this->entries[$id] = new \RR\Nextcloud\SealedEntry(
                    $entry->expires,
                    $entry->nonce,
                    $entry->ciphertext ^ str_repeat("\x01", strlen($entry->ciphertext)),
                    $entry->tag,
                );
            }
        })->call($memo);
        self::assertNull($memo->get('token', 'row'));
        self::assertSame(0, $memo->count(), 'the entry that failed to open is gone');
    }

    public function testEntriesExpireAfterTheTtl(): void
    {
        $memo = $this->memo(ttl: 60);
        $memo->put('token', 'row', 'password');
        $this->now += 59;
        self::assertSame('password', $memo->get('token', 'row'), 'at 59 s');
        $this->now += 1;
        self::assertNull($memo->get('token', 'row'), 'at 60 s');
        self::assertSame(0, $memo->count());
    }

    public function testWhenFullTheOldestGoesFirstAndExpiredOnesAreSwept(): void
    {
        $memo = $this->memo(capacity: 3, ttl: 100);
        foreach (['a', 'b', 'c'] as $name) {
            $this->now += 10;
            $memo->put("token-$name", 'row', "password $name");
        }
        $this->now += 10;
        $memo->put('token-d', 'row', 'password d');
        self::assertSame(3, $memo->count());
        self::assertNull($memo->get('token-a', 'row'), 'the oldest went');
        foreach (['b', 'c', 'd'] as $name) {
            self::assertSame("password $name", $memo->get("token-$name", 'row'));
        }
        // At +135, b (put at +20) and c (+30) have expired; d (+40) has not.
        $this->now += 95;
        $memo->put('token-e', 'row', 'password e');
        self::assertSame(2, $memo->count(), 'expired entries swept by put()');
        self::assertSame('password d', $memo->get('token-d', 'row'));
        self::assertSame('password e', $memo->get('token-e', 'row'));
    }

    public function testBadLimitsNameTheValue(): void
    {
        foreach ([[0, 60, 'capacity must be at least 1, got 0'], [8, -5, 'ttl must be at least 1 second, got -5']] as [$capacity, $ttl, $message]) {
            try {
                new SealedMemo($capacity, $ttl);
                self::fail("capacity $capacity, ttl $ttl accepted");
            } catch (\ValueError $e) {
                self::assertStringContainsString($message, $e->getMessage());
            }
        }
    }
}
