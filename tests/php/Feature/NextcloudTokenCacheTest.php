<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

use PHPUnit\Framework\TestCase;

/**
 * RR\Nextcloud\TokenCache on the Nextcloud install named by RR_NEXTCLOUD_ROOT (APCu as its
 * local cache), in a php process of its own (fixtures/token_cache.php): Nextcloud's token
 * cache in APCu serves a token whose row another process deleted; once confined to the
 * request, the next request refuses it.
 */
final class NextcloudTokenCacheTest extends TestCase
{
    public function testAConfinedTokenCacheForgetsWhatAnotherProcessDeleted(): void
    {
        $out = Server::nextcloudFixture('token_cache.php');
        self::assertArrayNotHasKey('error', $out);
        $uid = substr((string)$out['B'], strlen('taken by '));
        self::assertStringStartsWith('rr-token-cache-', $uid);

        self::assertSame('OC\\Memcache\\APCu', $out['cache'], 'the install keeps tokens in APCu');
        self::assertSame("taken by $uid", $out['A deleted elsewhere'], 'Nextcloud: the APCu copy outlives the row');
        self::assertTrue($out['confined']);
        self::assertSame('OCP\\Cache\\CappedMemoryCache', $out['cache confined'], 'what Nextcloud uses without a local cache');
        $refused = 'refused: OC\\Authentication\\Exceptions\\InvalidTokenException';
        self::assertSame($refused, $out['B deleted elsewhere, next request']);
        self::assertSame($refused, $out['A deleted elsewhere, next request'], 'the APCu copy is no longer read');
        self::assertFalse($out['confined twice'], 'a memory cache is left as it is');
    }
}
