<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

use PHPUnit\Framework\Assert;

/**
 * A fixture script run by the real `php` with the built extension, on an ephemeral port;
 * stopped with SIGTERM. The extension is $RR_EXT, else target/release/rr.so.
 */
final class Server
{
    /** @var resource */
    private $process;

    /** @param resource $process */
    private function __construct($process, public readonly string $address, private readonly string $stderrFile)
    {
        $this->process = $process;
    }

    public static function extension(): string
    {
        $env = getenv('RR_EXT');

        return $env !== false && $env !== '' ? $env : \dirname(__DIR__, 3) . '/target/release/rr.so';
    }

    /**
     * Runs PHP code (`php -n -r`) with the extension and returns what it printed; skips the
     * test without a built extension, fails it when php exits with another status than 0.
     *
     * @param array<string, string> $env added to this process's environment
     */
    public static function php(string $code, array $env = []): string
    {
        $ext = self::extension();
        if (!is_file($ext)) {
            Assert::markTestSkipped("no extension at {$ext} (build it, or set RR_EXT)");
        }
        $process = proc_open(
            [\PHP_BINARY, '-n', '-d', "extension={$ext}", '-r', $code],
            [1 => ['pipe', 'w'], 2 => ['pipe', 'w']],
            $pipes,
            null,
            $env + getenv(),
        );
        $out = stream_get_contents($pipes[1]);
        $err = stream_get_contents($pipes[2]);
        $status = proc_close($process);
        Assert::assertSame(0, $status, "php exited {$status}: {$out}{$err}");
        return (string)$out;
    }

    /**
     * Runs a fixture script against the Nextcloud install named by RR_NEXTCLOUD_ROOT (its root
     * as the argument; with `$extension`, under the built extension as php-fpm's SAPI) and
     * returns the JSON it printed; skips the test without an install (or an extension), fails
     * it when the script exits with another status than 0 or prints no JSON.
     *
     * @return array<string, mixed>
     */
    public static function nextcloudFixture(string $fixture, bool $extension = false): array
    {
        $root = (string)getenv('RR_NEXTCLOUD_ROOT');
        if ($root === '' || !is_file($root . '/lib/base.php') || !is_file($root . '/config/config.php')) {
            Assert::markTestSkipped('set RR_NEXTCLOUD_ROOT to an installed Nextcloud (tests/nextcloud/install.sh)');
        }
        $command = [\PHP_BINARY, '-d', 'apc.enable_cli=1'];
        if ($extension) {
            $ext = self::extension();
            if (!is_file($ext)) {
                Assert::markTestSkipped("no extension at {$ext} (build it, or set RR_EXT)");
            }
            array_push($command, '-d', 'rr.sapi_name=fpm-fcgi', '-d', "extension={$ext}");
        }
        array_push($command, \dirname(__DIR__) . '/fixtures/' . $fixture, $root);
        $process = proc_open($command, [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, sys_get_temp_dir());
        Assert::assertIsResource($process);
        $stdout = (string)stream_get_contents($pipes[1]);
        $stderr = (string)stream_get_contents($pipes[2]);
        $status = proc_close($process);
        Assert::assertSame(0, $status, "{$fixture} failed: {$stderr} {$stdout}");
        $out = json_decode(trim($stdout), true);
        Assert::assertIsArray($out, "not JSON: {$stdout} {$stderr}");
        return $out;
    }

    /**
     * @param array<string, string> $env added to this process's environment
     * @param list<string> $args after the script's path
     * @param bool $systemIni with the system's php.ini and its extensions (frameworks need
     *     mbstring, ctype, tokenizer...), else `php -n`
     * @param array<string, string> $ini `-d` settings
     */
    public static function start(string $fixture, array $env = [], array $args = [], bool $systemIni = false, array $ini = []): self
    {
        $stderr = tempnam(sys_get_temp_dir(), 'rr-php-feature-');
        $command = [\PHP_BINARY, ...($systemIni ? [] : ['-n']), '-d', 'extension=' . self::extension()];
        foreach ($ini as $name => $value) {
            array_push($command, '-d', "$name=$value");
        }
        $script = str_starts_with($fixture, '/') ? $fixture : \dirname(__DIR__) . '/fixtures/' . $fixture;
        $process = proc_open(
            [...$command, $script, ...$args],
            [0 => ['file', '/dev/null', 'r'], 1 => ['file', $stderr, 'a'], 2 => ['file', $stderr, 'a']],
            $pipes,
            null,
            $env + array_diff_key(getenv(), ['RR_CONFIG' => true]),
        );
        if (!\is_resource($process)) {
            throw new \RuntimeException("cannot start php with $fixture");
        }
        $deadline = microtime(true) + 20;
        while (microtime(true) < $deadline) {
            $log = (string) file_get_contents($stderr);
            if (preg_match('~rr listening on http://([^\s"]+)~', $log, $m) === 1) {
                return new self($process, $m[1], $stderr);
            }
            if (!proc_get_status($process)['running']) {
                throw new \RuntimeException("$fixture exited before listening:\n$log");
            }
            usleep(20_000);
        }
        proc_terminate($process, 9);
        throw new \RuntimeException("$fixture did not listen within 20 s:\n" . file_get_contents($stderr));
    }

    /** Sends SIGTERM and waits for the exit; returns the exit code (-1 when it had to be killed). */
    public function stop(): int
    {
        proc_terminate($this->process, 15);
        $deadline = microtime(true) + 10;
        do {
            $status = proc_get_status($this->process);
            if (!$status['running']) {
                proc_close($this->process);
                @unlink($this->stderrFile);

                return $status['exitcode'];
            }
            usleep(20_000);
        } while (microtime(true) < $deadline);
        proc_terminate($this->process, 9);
        proc_close($this->process);

        return -1;
    }

    public function log(): string
    {
        return (string) @file_get_contents($this->stderrFile);
    }

    /**
     * One HTTP/1.1 request through PHP's http stream wrapper (it decodes chunked bodies).
     *
     * @param list<string> $headers
     * @return array{status: int, headers: array<string, list<string>>, body: string}
     */
    public function request(string $method, string $path, array $headers = [], string $body = ''): array
    {
        $context = stream_context_create(['http' => [
            'method' => $method,
            'header' => array_merge(['Connection: close'], $headers),
            'content' => $body,
            'ignore_errors' => true,
            'follow_location' => 0,
            'protocol_version' => 1.1,
            'timeout' => 30,
        ]]);
        $response = file_get_contents("http://{$this->address}$path", false, $context);
        if ($response === false) {
            throw new \RuntimeException("$method $path failed:\n" . $this->log());
        }
        $head = $http_response_header;
        preg_match('~^HTTP/\S+ (\d{3})~', (string) array_shift($head), $m);
        $parsed = [];
        foreach ($head as $line) {
            [$name, $value] = explode(':', $line, 2);
            $parsed[strtolower($name)][] = trim($value);
        }

        return ['status' => (int) ($m[1] ?? 0), 'headers' => $parsed, 'body' => $response];
    }

    /**
     * One HTTP/1.1 GET over a plain socket, read to the connection's close, telling whether the
     * answer ended as its framing says (the last chunk, or Content-Length met): the http stream
     * wrapper takes a chunked body cut off half-way for a whole one.
     *
     * @return array{status: int, complete: bool, body: string}
     */
    public function transfer(string $path): array
    {
        $socket = stream_socket_client("tcp://{$this->address}", $errno, $error, 10);
        if ($socket === false) {
            throw new \RuntimeException("cannot connect to {$this->address}: $error");
        }
        stream_set_timeout($socket, 30);
        fwrite($socket, "GET $path HTTP/1.1\r\nHost: {$this->address}\r\nConnection: close\r\n\r\n");
        $raw = (string) @stream_get_contents($socket);
        fclose($socket);
        [$head, $rest] = array_pad(explode("\r\n\r\n", $raw, 2), 2, '');
        preg_match('~^HTTP/\S+ (\d{3})~', $head, $m);
        $status = (int) ($m[1] ?? 0);
        if (preg_match('~^transfer-encoding:\s*chunked~im', $head) === 1) {
            $body = '';
            while (preg_match('~^([0-9a-fA-F]+)[^\r\n]*\r\n~', $rest, $size) === 1) {
                $length = (int) hexdec($size[1]);
                $rest = (string) substr($rest, \strlen($size[0]));
                if ($length === 0) {
                    return ['status' => $status, 'complete' => str_starts_with($rest, "\r\n"), 'body' => $body];
                }
                if (\strlen($rest) < $length + 2) {
                    break;
                }
                $body .= substr($rest, 0, $length);
                $rest = (string) substr($rest, $length + 2);
            }

            return ['status' => $status, 'complete' => false, 'body' => $body . $rest];
        }
        $complete = preg_match('~^content-length:\s*(\d+)~im', $head, $length) === 1
            && \strlen($rest) === (int) $length[1];

        return ['status' => $status, 'complete' => $complete, 'body' => $rest];
    }
}
