<?php

declare(strict_types=1);

namespace RR\Tests\Unit;

use PHPUnit\Framework\TestCase;
use RR\Nextcloud\ApcuScope;

/**
 * RR\Nextcloud\ApcuScope: which rr processes share their APCu (and so Nextcloud's token cache)
 * with every other process serving the install.
 */
final class NextcloudApcuScopeTest extends TestCase
{
    public function testForkedWorkersTheTemplateAndASingleProcessShare(): void
    {
        self::assertSame(ApcuScope::Shared, ApcuScope::of('template', false), 'what the template boots, its forks inherit');
        self::assertSame(ApcuScope::Shared, ApcuScope::of('worker', true), 'forked from the template (booted after the fork)');
        self::assertSame(ApcuScope::Shared, ApcuScope::of('single', false), 'one process serves every request');
    }

    public function testReExecutedWorkersAndTheMasterHaveTheirOwn(): void
    {
        self::assertSame(ApcuScope::PerProcess, ApcuScope::of('worker', false), 'template: false');
        self::assertSame(ApcuScope::PerProcess, ApcuScope::of('master', false));
    }

    public function testAnUnknownRoleIsRefusedByName(): void
    {
        $this->expectException(\InvalidArgumentException::class);
        $this->expectExceptionMessage("unknown role 'pool'");
        ApcuScope::of('pool', false);
    }

    public function testWithoutAStartedWorkerTheAnswerIsTheCautiousOne(): void
    {
        // The unit tests run without rr: nothing says the APCu is shared.
        self::assertSame(ApcuScope::PerProcess, ApcuScope::ofThisProcess());
    }
}
