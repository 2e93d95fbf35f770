<?php

declare(strict_types=1);

namespace RR\Tests\Unit;

use PHPUnit\Framework\TestCase;
use RR\Nextcloud\Phases;

/** RR\Nextcloud\Phases: averages per script and phase, one JSON line every N requests. */
final class NextcloudPhasesTest extends TestCase
{
    private string $file;

    protected function setUp(): void
    {
        $this->file = sys_get_temp_dir() . '/rr-nc-phases-' . getmypid() . '-' . bin2hex(random_bytes(4)) . '.jsonl';
    }

    protected function tearDown(): void
    {
        @unlink($this->file);
    }

    /** @return list<array<string, mixed>> */
    private function lines(): array
    {
        if (!is_file($this->file)) {
            return [];
        }
        return array_map(
            static fn (string $line): array => json_decode($line, true, 512, JSON_THROW_ON_ERROR),
            file($this->file, FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES),
        );
    }

    private static function request(Phases $phases, string $script, int $sleepUs, int $spinUs = 0): void
    {
        $phases->start($script);
        $phases->mark('begin');
        usleep($sleepUs);
        $phases->mark('entry');
        // Busy until the process has used $spinUs of CPU time (however long that takes).
        $until = self::cpuUs() + $spinUs;
        while (self::cpuUs() < $until) {
        }
        $phases->mark('reset');
        $phases->finish();
    }

    private static function cpuUs(): int
    {
        $usage = getrusage();
        return ($usage['ru_utime.tv_sec'] + $usage['ru_stime.tv_sec']) * 1_000_000
            + $usage['ru_utime.tv_usec'] + $usage['ru_stime.tv_usec'];
    }

    public function testWritesOneLinePerWindowWithAveragesPerScript(): void
    {
        $phases = new Phases($this->file, 3);
        self::request($phases, '/ocs/v2.php', 2000, 3000);
        self::request($phases, '/remote.php', 0);
        self::assertSame([], $this->lines(), 'nothing before the window is full');
        self::request($phases, '/ocs/v2.php', 2000, 3000);

        $lines = $this->lines();
        self::assertCount(1, $lines);
        self::assertSame(getmypid(), $lines[0]['pid']);
        self::assertSame(3, $lines[0]['requests']);
        self::assertIsInt($lines[0]['gc_runs']);
        self::assertSame(['/ocs/v2.php', '/remote.php'], array_keys($lines[0]['scripts']));
        $ocs = $lines[0]['scripts']['/ocs/v2.php'];
        self::assertSame(2, $ocs['requests']);
        self::assertSame(['begin', 'entry', 'reset', 'total'], array_keys($ocs['us']));
        self::assertSame(['begin', 'entry', 'reset', 'total'], array_keys($ocs['cpu_us']));
        // Each /ocs/v2.php request slept 2 ms in its entry phase: the average wall time is at
        // least that. Its reset phase burned 3 ms of CPU: the CPU average is at least that, and
        // the wall time too (CPU time cannot pass faster than the clock on one thread).
        self::assertGreaterThanOrEqual(2000.0, $ocs['us']['entry']);
        self::assertGreaterThanOrEqual(3000.0, $ocs['cpu_us']['reset']);
        self::assertGreaterThanOrEqual($ocs['cpu_us']['reset'], $ocs['us']['reset'] + 1.0);
        self::assertEqualsWithDelta(
            $ocs['us']['begin'] + $ocs['us']['entry'] + $ocs['us']['reset'],
            $ocs['us']['total'],
            0.3,
        );
        self::assertEqualsWithDelta(
            $ocs['cpu_us']['begin'] + $ocs['cpu_us']['entry'] + $ocs['cpu_us']['reset'],
            $ocs['cpu_us']['total'],
            0.3,
        );
        self::assertSame(1, $lines[0]['scripts']['/remote.php']['requests']);
    }

    public function testStartsAFreshWindowAfterEachLine(): void
    {
        $phases = new Phases($this->file, 2);
        self::request($phases, '/ocs/v2.php', 0);
        self::request($phases, '/ocs/v2.php', 0);
        self::request($phases, '/status.php', 0);
        self::request($phases, '/status.php', 0);

        $lines = $this->lines();
        self::assertCount(2, $lines);
        self::assertSame(['/ocs/v2.php'], array_keys($lines[0]['scripts']));
        self::assertSame(['/status.php'], array_keys($lines[1]['scripts']));
        self::assertSame(2, $lines[1]['scripts']['/status.php']['requests']);
    }

    public function testRefusesAZeroWindow(): void
    {
        $this->expectException(\InvalidArgumentException::class);
        $this->expectExceptionMessage('every must be at least 1, got 0');
        new Phases($this->file, 0);
    }
}
