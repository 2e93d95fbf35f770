<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

/**
 * A Laravel 8 app on RR\Laravel\Worker, with what real apps build at boot: the auth manager
 * and gate, the URL generator (URL::forceScheme()), the cache (the rate limiter).
 */
class LaravelTest extends FrameworkAppTestCase
{
    protected static function startApp(string $var): Server
    {
        return Server::start(\dirname(__DIR__) . '/fixtures/laravel/worker.php', ['RR_TEST_VAR' => $var] + static::env($var), systemIni: true, ini: ['rr.address' => '127.0.0.1:0']);
    }

    protected static function streamsChunked(): bool
    {
        return true;
    }

    public function testAContainerServiceKeepsNoRequestStateBetweenRequests(): void
    {
        for ($i = 0; $i < 20; $i++) {
            $response = self::$server->request('GET', "/memo?value=v$i");
            self::assertSame(["v$i"], json_decode($response['body'], true, 512, \JSON_THROW_ON_ERROR), "request $i");
        }
    }

    public function testConfigurationChangedByARequestStaysInIt(): void
    {
        for ($i = 0; $i < 5; $i++) {
            $response = self::$server->request('GET', "/config?set=v$i");
            self::assertSame(['before' => null], json_decode($response['body'], true, 512, \JSON_THROW_ON_ERROR), "request $i");
        }
    }

    public function testTerminatingCallbacksRunAfterTheAnswer(): void
    {
        self::$server->request('GET', '/memo?value=terminate-me');

        $terminated = json_decode(self::$server->request('GET', '/terminated')['body'], true, 512, \JSON_THROW_ON_ERROR);

        self::assertContains('/memo', $terminated);
    }

    public function testTwoLoggedInUsersAlternateAndInterleaveOnOneWorker(): void
    {
        $users = ['alice' => new Browser(self::$server), 'bob' => new Browser(self::$server)];
        foreach ($users as $name => $browser) {
            $login = $browser->request('GET', "/login?user=$name", ["Host: $name.example"]);
            self::assertSame(200, $login['status'], $login['body'] . self::$server->log());
        }
        $pids = [];
        for ($round = 1; $round <= 10; $round++) {
            // alice, bob, then a client without a session between each of them
            foreach (['alice', 'bob'] as $name) {
                $answer = $this->json($users[$name]->request('GET', '/whoami', ["Host: $name.example"]));
                $where = "$name, round $round";
                self::assertSame($name, $answer['auth'], $where);
                self::assertSame($name, $answer['id'], $where);
                self::assertSame($name, $answer['requestUser'], $where);
                self::assertSame($name, $answer['contract'], $where);
                self::assertSame($name === 'alice', $answer['isAlice'], $where);
                self::assertSame("http://$name.example/whoami", $answer['url'], $where);
                $pids[$answer['pid']] = true;

                $stranger = $this->json(self::$server->request('GET', '/whoami', ['Host: stranger.example']));
                self::assertSame(
                    [null, null, null, null, false, 'http://stranger.example/whoami'],
                    [$stranger['auth'], $stranger['id'], $stranger['requestUser'], $stranger['contract'], $stranger['isAlice'], $stranger['url']],
                    "a client without a session after $where",
                );
                $pids[$stranger['pid']] = true;
            }
        }
        self::assertCount(1, $pids, 'one worker served every request');
    }

    public function testAMiddlewareSeesOnlyItsOwnRequest(): void
    {
        foreach (['alice', 'bob', 'carol'] as $name) {
            $response = self::$server->request('GET', "/hello/x?user=$name");
            self::assertSame([$name], $response['headers']['x-users-seen'] ?? [], "$name's request");
        }
    }

    public function testDataAViewSharedDuringARequestIsNotSharedWithTheNext(): void
    {
        foreach (['/share?user=alice', '/share', '/share?user=bob', '/share'] as $path) {
            $answer = $this->json(self::$server->request('GET', $path));
            // What the providers shared at boot stays.
            self::assertSame(['before' => null, 'app' => 'rr-test'], $answer, $path);
        }
    }

    public function testUrlDefaultsAndARootUrlForcedByARequestStayInIt(): void
    {
        $alice = $this->json(self::$server->request('GET', '/de/url-defaults?set=alice'));
        $next = $this->json(self::$server->request('GET', '/en/url-defaults', ['Host: bob.example']));

        self::assertSame(['before' => [], 'url' => 'http://alice.example/x'], $alice);
        // The scheme the provider forced at boot stays; alice's root and defaults do not.
        self::assertSame(['before' => [], 'url' => 'http://bob.example/x'], $next);
    }

    public function testALocaleSetByARequestStaysInIt(): void
    {
        foreach (['/locale?set=de', '/locale', '/locale?set=fr', '/locale'] as $path) {
            $answer = $this->json(self::$server->request('GET', $path));
            self::assertSame(['before' => ['app' => 'en', 'translator' => 'en']], $answer, $path);
        }
    }

    public function testATransactionARequestLeftOpenIsRolledBack(): void
    {
        $failed = self::$server->request('GET', '/notes?add=alice');
        $next = $this->json(self::$server->request('GET', '/notes'));

        self::assertSame(500, $failed['status']);
        // php-fpm closes the connection at the request's end: alice's row was never committed.
        self::assertSame(['visible' => [], 'level' => 0], $next);
    }

    public function testThePaginatorReadsTheRequestBeingServed(): void
    {
        $third = $this->json(self::$server->request('GET', '/page?page=3', ['Host: alice.example']));
        $first = $this->json(self::$server->request('GET', '/page', ['Host: bob.example']));

        self::assertSame(['page' => 3, 'path' => 'http://alice.example/page'], $third);
        self::assertSame(['page' => 1, 'path' => 'http://bob.example/page'], $first);
    }

    public function testAListenerIsBuiltWithTheRequestBeingServed(): void
    {
        foreach (['alice', 'bob'] as $name) {
            self::assertSame([$name], $this->json(self::$server->request('GET', "/visit?user=$name")), "$name's request");
        }
    }

    public function testAGateAbilityClassIsBuiltWithTheRequestBeingServed(): void
    {
        $alice = new Browser(self::$server);
        $alice->request('GET', '/login?user=alice');

        self::assertTrue($this->json($alice->request('GET', '/named?user=alice')), 'alice named');
        self::assertFalse($this->json($alice->request('GET', '/named?user=bob')), 'bob named');
    }

    public function testAnArrayCacheBuiltAtBootStartsEmptyInEveryRequest(): void
    {
        foreach (['alice', 'bob', 'carol'] as $name) {
            $answer = $this->json(self::$server->request('GET', "/cache?value=secret-of-$name"));
            self::assertSame(['before' => null], $answer, "$name's request");
        }
    }

    public function testEveryRequestGetsItsOwnController(): void
    {
        foreach (['alice', 'bob', 'alice', 'carol'] as $i => $name) {
            $answer = $this->json(self::$server->request('GET', "/profile?user=$name"));
            self::assertSame(
                ['constructorRequest' => $name, 'methodRequest' => $name, 'middlewareUser' => $name],
                $answer,
                "request $i, by $name",
            );
        }
    }

    public function testAnErrorPageFindsOnlyItsOwnRequestsRouteAndUser(): void
    {
        $alice = new Browser(self::$server);
        $alice->request('GET', '/login?user=alice', ['Host: alice.example']);

        $failed = $alice->request('GET', '/user/alice/throw', ['Host: alice.example']);
        $missing = self::$server->request('GET', '/no/such/page');

        self::assertSame(500, $failed['status']);
        self::assertSame('error 500 {"route":"user\/{name}\/throw","parameters":{"name":"alice"},"user":"alice","path":"user\/alice\/throw"}', $failed['body']);
        self::assertSame(404, $missing['status']);
        // php-fpm: an unmatched path has no current route, and this client no user.
        self::assertSame('error 404 {"route":null,"parameters":[],"user":null,"path":"no\/such\/page"}', $missing['body']);
    }

    public function testAQueuedCookieGoesOnlyToTheRequestThatQueuedIt(): void
    {
        $queued = self::$server->request('GET', '/cookie?set=alice-preference');
        $next = self::$server->request('GET', '/cookie');

        $names = static fn (array $response): array => array_map(
            static fn (string $line): string => explode('=', $line, 2)[0],
            $response['headers']['set-cookie'] ?? [],
        );
        self::assertSame(['laravel_session', 'pref'], $names($queued));
        self::assertSame(['laravel_session'], $names($next));
    }

    public function testAnUploadIsNotSeenByTheNextRequest(): void
    {
        $boundary = 'rr-' . bin2hex(random_bytes(8));
        $body = "--$boundary\r\nContent-Disposition: form-data; name=\"who\"\r\n\r\nalice\r\n"
            . "--$boundary\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a.txt\"\r\n"
            . "Content-Type: text/plain\r\n\r\nalice's file\r\n--$boundary--\r\n";

        $upload = $this->json(self::$server->request('POST', '/files', ["Content-Type: multipart/form-data; boundary=$boundary"], $body));
        $next = $this->json(self::$server->request('POST', '/files', ['Content-Type: application/x-www-form-urlencoded'], 'who=bob'));

        self::assertSame(['files' => ['doc'], 'input' => ['who' => 'alice', 'doc' => []]], $upload);
        self::assertSame(['files' => [], 'input' => ['who' => 'bob']], $next);
    }

    /**
     * @param array{status: int, headers: array<string, list<string>>, body: string} $response
     * @return mixed the decoded body of a 200 answer
     */
    private function json(array $response): mixed
    {
        self::assertSame(200, $response['status'], $response['body'] . self::$server->log());

        return json_decode($response['body'], true, 512, \JSON_THROW_ON_ERROR);
    }
}
