<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

use PHPUnit\Framework\TestCase;

/**
 * RR\Nextcloud\TokenPasswords on the Nextcloud install named by RR_NEXTCLOUD_ROOT, in a php
 * process of its own (fixtures/token_passwords.php boots Nextcloud and adds, then deletes, a
 * throwaway user): the memo answers only the same token with the same row, and every change of
 * the row Nextcloud makes gives the new password.
 */
final class NextcloudTokenPasswordsTest extends TestCase
{
    public function testTheMemoAnswersOnlyAnUnchangedTokenRowPresentedWithItsId(): void
    {
        $out = Server::nextcloudFixture('token_passwords.php');
        self::assertArrayNotHasKey('error', $out);

        self::assertSame('first password', $out['a']);
        self::assertSame(0, $out['hits after a'], 'the first decryption is Nextcloud\'s');
        self::assertSame('first password', $out['a again']);
        self::assertSame(1, $out['hits after a again'], 'the same token and row: answered by the memo');
        self::assertSame('second password', $out['b']);
        self::assertSame('second password', $out['a after b'], 'a new token re-encrypts every token of the user: a changed row');
        self::assertSame('refused: OC\\Authentication\\Exceptions\\InvalidTokenException', $out['a with another id']);
        self::assertSame('third password', $out['a after setPassword']);
        self::assertSame('third password', $out['b after setPassword']);
        self::assertSame(1, $out['hits at the end'], 'no changed row was answered from the memo');
        self::assertSame(5, $out['entries'], 'one entry per token and row version decrypted');
    }
}
