<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

use PHPUnit\Framework\TestCase;

/**
 * RR\Worker::handle() resets the session module after every request: save handlers set with
 * session_set_save_handler() (a custom one, Symfony's, Laravel's) and PHP's own `files` take
 * turns on one worker, two users each, and every request finds its own session.
 */
final class HandleSessionsTest extends TestCase
{
    private const KINDS = ['custom', 'symfony', 'laravel', 'native'];

    private string $store = '';

    protected function setUp(): void
    {
        if (!is_file(Server::extension())) {
            self::markTestSkipped('no built extension at ' . Server::extension());
        }
        $this->store = sys_get_temp_dir() . '/rr-handle-sessions-' . bin2hex(random_bytes(6));
    }

    protected function tearDown(): void
    {
        if ($this->store !== '' && is_dir($this->store)) {
            exec('rm -rf ' . escapeshellarg($this->store));
        }
    }

    public function testTwoUsersAlternateOverEverySaveHandlerForTwentyRounds(): void
    {
        $server = Server::start('handle_sessions.php', ['RR_TEST_SESSIONS' => $this->store], systemIni: true);
        try {
            $browsers = [];
            foreach (self::KINDS as $kind) {
                foreach (['alice', 'bob'] as $user) {
                    $browsers[$kind][$user] = new Browser($server);
                }
            }
            $pids = [];
            for ($round = 1; $round <= 20; $round++) {
                foreach (self::KINDS as $kind) {
                    foreach (['alice', 'bob'] as $user) {
                        $answer = $browsers[$kind][$user]->json("/$kind?user=$user");
                        $where = "$kind, $user, round $round";
                        self::assertSame($user, $answer['user'], $where);
                        self::assertSame($round, $answer['count'], $where);
                        // php-fpm's request end puts back what the last request's
                        // session_set_save_handler() changed; so must rr.
                        self::assertSame('files', $answer['handlerBefore'], $where);
                        $pids[$answer['pid']] = true;
                    }
                }
            }
            self::assertCount(1, $pids, 'one worker served every request');
            foreach (self::KINDS as $kind) {
                self::assertCount(2, glob("{$this->store}/$kind/*") ?: [], "two sessions stored by $kind");
            }
        } finally {
            $server->stop();
        }
    }
}
