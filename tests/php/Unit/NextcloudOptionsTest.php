<?php

declare(strict_types=1);

namespace RR\Tests\Unit;

use PHPUnit\Framework\TestCase;
use RR\Nextcloud\Containers;
use RR\Nextcloud\Options;
use RR\Nextcloud\Phases;
use RR\Nextcloud\SpeedUps\CompiledRoutes;
use RR\Nextcloud\SpeedUps\DerivedKeys;
use RR\Nextcloud\SpeedUps\DirectLookups;
use RR\Nextcloud\SpeedUps\KeptServices;
use RR\Nextcloud\SpeedUps\PreparedStatements;
use RR\Nextcloud\SpeedUps\RandomStrings;
use RR\Nextcloud\SpeedUps\SealedPasswords;

/** RR\Nextcloud\Options: the NEXTCLOUD_* variables, their defaults, and the speed-ups they select. */
final class NextcloudOptionsTest extends TestCase
{
    public function testDefaultsWithoutVariables(): void
    {
        $options = Options::fromEnvironment([]);
        self::assertEquals(new Options(), $options);
        self::assertTrue($options->keepPure);
        self::assertFalse($options->verifyKept);
        self::assertTrue($options->sealPasswords);
        self::assertTrue($options->directLookups);
        self::assertTrue($options->statementCache);
        self::assertTrue($options->batchedRandom);
        self::assertTrue($options->retireOnExit);
        self::assertNull($options->eagerBoot);
        self::assertNull($options->promotionLog);
        self::assertNull($options->phases(), 'no phase timer without NEXTCLOUD_PHASES');
        self::assertEquals(Options::fromEnvironment([]), Options::fromEnvironment([
            'NEXTCLOUD_KEEP_PURE' => '', 'NEXTCLOUD_PHASES' => '', 'NEXTCLOUD_EAGER_BOOT' => '',
        ]), 'an empty variable is an unset one');
    }

    public function testEachVariableSetsItsOption(): void
    {
        $options = Options::fromEnvironment([
            'NEXTCLOUD_KEEP_PURE' => '0',
            'NEXTCLOUD_PROMOTION_LOG' => '/tmp/promotions.log',
            'NEXTCLOUD_VERIFY_KEPT' => '1',
            'NEXTCLOUD_SEAL_PASSWORDS' => '0',
            'NEXTCLOUD_DIRECT_LOOKUPS' => '0',
            'NEXTCLOUD_STATEMENT_CACHE' => '0',
            'NEXTCLOUD_BATCHED_RANDOM' => '0',
            'NEXTCLOUD_PHASES' => '/tmp/phases.jsonl',
            'NEXTCLOUD_PHASES_EVERY' => '7',
            'NEXTCLOUD_EAGER_BOOT' => '0',
            'NEXTCLOUD_RETIRE_ON_EXIT' => '0',
        ]);
        self::assertEquals(new Options(
            keepPure: false,
            promotionLog: '/tmp/promotions.log',
            verifyKept: true,
            sealPasswords: false,
            directLookups: false,
            statementCache: false,
            batchedRandom: false,
            phasesFile: '/tmp/phases.jsonl',
            phasesEvery: 7,
            eagerBoot: false,
            retireOnExit: false,
        ), $options);
        self::assertInstanceOf(Phases::class, $options->phases());
        self::assertTrue(Options::fromEnvironment(['NEXTCLOUD_EAGER_BOOT' => '1'])->eagerBoot);
    }

    public function testTheSpeedUpsFollowTheOptions(): void
    {
        $classes = static fn (Options $o): array => array_map(
            static fn (object $s): string => $s::class,
            $o->speedUps(new Containers()),
        );
        self::assertSame(
            [CompiledRoutes::class, DerivedKeys::class, SealedPasswords::class, DirectLookups::class,
                PreparedStatements::class, RandomStrings::class, KeptServices::class],
            $classes(new Options()),
        );
        self::assertSame(
            [CompiledRoutes::class, DerivedKeys::class],
            $classes(new Options(
                keepPure: false,
                sealPasswords: false,
                directLookups: false,
                statementCache: false,
                batchedRandom: false,
            )),
        );
    }

    /** @return iterable<string, array{array<string, string>, string}> */
    public static function badValues(): iterable
    {
        yield 'a word for a switch' => [['NEXTCLOUD_KEEP_PURE' => 'no'], "NEXTCLOUD_KEEP_PURE must be 0 or 1, got 'no'"];
        yield 'true for a switch' => [['NEXTCLOUD_VERIFY_KEPT' => 'true'], "NEXTCLOUD_VERIFY_KEPT must be 0 or 1, got 'true'"];
        yield 'eager boot' => [['NEXTCLOUD_EAGER_BOOT' => 'yes'], "NEXTCLOUD_EAGER_BOOT must be 0 or 1, got 'yes'"];
        yield 'a word for a window' => [
            ['NEXTCLOUD_PHASES' => '/tmp/p', 'NEXTCLOUD_PHASES_EVERY' => 'ten'],
            "NEXTCLOUD_PHASES_EVERY must be a whole number of requests (at least 1), got 'ten'",
        ];
        yield 'a zero window' => [
            ['NEXTCLOUD_PHASES_EVERY' => '0'],
            "NEXTCLOUD_PHASES_EVERY must be a whole number of requests (at least 1), got '0'",
        ];
    }

    /**
     * @dataProvider badValues
     * @param array<string, string> $environment
     */
    public function testRefusesABadValueNamingTheVariable(array $environment, string $message): void
    {
        $this->expectException(\InvalidArgumentException::class);
        $this->expectExceptionMessage($message);
        Options::fromEnvironment($environment);
    }

    public function testRefusesBadValuesGivenDirectly(): void
    {
        $this->expectException(\InvalidArgumentException::class);
        $this->expectExceptionMessage('phasesEvery must be at least 1, got 0');
        new Options(phasesFile: '/tmp/p', phasesEvery: 0);
    }
}
