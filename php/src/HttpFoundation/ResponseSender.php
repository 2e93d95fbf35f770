<?php

declare(strict_types=1);

namespace RR\HttpFoundation;

use RR\Http\HttpWorkerInterface;
use Symfony\Component\HttpFoundation\BinaryFileResponse;
use Symfony\Component\HttpFoundation\Response;
use Symfony\Component\HttpFoundation\StreamedResponse;

/**
 * Sends a Symfony HttpFoundation response through rr: a file from disk goes to sendFile() (rr
 * streams it, with Range and HEAD, and the worker is free at once), a streamed response goes
 * out chunk by chunk as its callback writes, anything else in one respond().
 */
final class ResponseSender
{
    /** Streamed output is sent once this much is buffered (and at every flush()). */
    public const CHUNK_SIZE = 64 * 1024;

    public function __construct(private readonly HttpWorkerInterface|\RR\Worker $worker)
    {
    }

    public function send(Response $response): void
    {
        $status = $response->getStatusCode();
        $headers = $response->headers->allPreserveCaseWithoutCookies();
        foreach ($response->headers->getCookies() as $cookie) {
            $headers['Set-Cookie'][] = (string) $cookie;
        }

        if ($response instanceof BinaryFileResponse) {
            $this->sendFile($response, $status, $headers);
        } elseif ($response instanceof StreamedResponse) {
            $this->stream($response, $status, $headers);
        } else {
            $this->worker->respond($status, (string) $response->getContent(), $headers);
        }
    }

    /** @param array<string, list<string|null>> $headers */
    private function sendFile(BinaryFileResponse $response, int $status, array $headers): void
    {
        $path = $response->getFile()->getRealPath();
        $deleteAfter = (fn (): bool => $this->deleteFileAfterSend)->call($response);
        if ($path === false || $deleteAfter) {
            // rr reads the file after this call returns: one to delete now is sent from memory.
            $this->worker->respond($status, (string) file_get_contents((string) $response->getFile()->getPathname()), $headers);
            if ($deleteAfter && is_file($response->getFile()->getPathname())) {
                unlink($response->getFile()->getPathname());
            }

            return;
        }
        // rr answers Range requests itself: Symfony's own range (prepare()) is dropped.
        foreach (array_keys($headers) as $name) {
            $lower = strtolower((string) $name);
            if ($lower === 'content-length' || $lower === 'content-range') {
                unset($headers[$name]);
            }
        }
        $this->worker->sendFile($path, $status === 206 || $status === 416 ? 200 : $status, $headers);
    }

    /** @param array<string, list<string|null>> $headers */
    private function stream(StreamedResponse $response, int $status, array $headers): void
    {
        $head = $headers;
        $level = ob_get_level();
        ob_start(function (string $chunk) use ($status, &$head): string {
            if ($chunk !== '') {
                $this->worker->respond($status, $chunk, $head, false);
                $head = null;
            }

            return '';
        }, self::CHUNK_SIZE);
        $failure = null;
        try {
            $response->sendContent();
        } catch (\Throwable $e) {
            $failure = $e;
        } finally {
            while (ob_get_level() > $level) {
                ob_end_flush();
            }
        }
        if ($failure !== null) {
            // Not ended: the caller's error() (or the next waitRequest()) cuts the answer off,
            // so the client cannot take what the callback wrote before failing for all of it.
            throw $failure;
        }
        $this->worker->respond($status, '', $head, true);
    }
}
