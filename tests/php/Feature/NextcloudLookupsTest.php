<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

use PHPUnit\Framework\TestCase;

/**
 * RR\Nextcloud\Lookups on the Nextcloud install named by RR_NEXTCLOUD_ROOT (32.0.1, whose
 * container sources Lookups knows), in a php process of its own with the built extension
 * (fixtures/lookups.php): once the server and every app container are turned, each of ~7,700
 * questions (every app container asked for every OCP service of the server, for other apps'
 * services, for names nobody has; the server asked for every app service) gets the same
 * answer as before: the same shared object, an object of the same class with the same scalar
 * properties, or the same exception.
 */
final class NextcloudLookupsTest extends TestCase
{
    public function testTurnedContainersGiveTheSameAnswers(): void
    {
        $out = Server::nextcloudFixture('lookups.php', extension: true);

        self::assertSame($out['apps'] + 1, $out['turned'], 'the server and every app container are turned (Lookups knows this Nextcloud\'s sources)');
        self::assertSame('RR\\Nextcloud\\LookupServer', $out['server class']);
        self::assertGreaterThan(5000, $out['questions']);
        self::assertSame([], $out['differences'], "{$out['difference count']} answers changed");
    }
}
