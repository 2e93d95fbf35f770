<?php

declare(strict_types=1);

namespace RR\HttpFoundation;

use RR\Http\ServerParams;
use Symfony\Component\HttpFoundation\File\UploadedFile;
use Symfony\Component\HttpFoundation\Request;

/**
 * Turns an rr request into a Symfony HttpFoundation request (which Laravel's request extends),
 * as `Request::createFromGlobals()` would have built it under php-fpm.
 */
final class RequestFactory
{
    private readonly ServerParams $serverParams;

    /**
     * @param array<array-key, mixed> $bootServer `$_SERVER` when the worker started; its script
     *     becomes the front controller (`SCRIPT_NAME` `/index.php`) as a web server names it
     * @param class-string<UploadedFile> $uploadedFileClass the class of uploaded files (Laravel
     *     keeps its own subclass as it is, and would re-wrap any other as a non-test upload
     *     that fails isValid())
     */
    public function __construct(array $bootServer, private readonly string $uploadedFileClass = UploadedFile::class)
    {
        $script = (string) ($bootServer['SCRIPT_FILENAME'] ?? '');
        $path = realpath($script);
        $name = '/' . basename($script);
        $bootServer['SCRIPT_FILENAME'] = $path === false ? $script : $path;
        $bootServer['SCRIPT_NAME'] = $name;
        $bootServer['PHP_SELF'] = $name;
        unset($bootServer['argv'], $bootServer['argc'], $bootServer['PATH_TRANSLATED']);
        $this->serverParams = new ServerParams($bootServer);
    }

    /** @param object $request an `RR\Request` or an object with the same public properties */
    public function create(object $request): Request
    {
        $server = $this->serverParams->of($request);
        // Like RoadRunner: code that reads $_SERVER directly sees the current request.
        $_SERVER = $server;

        return new Request(
            $request->query,
            $request->parsed,
            $request->attributes,
            $request->cookies,
            $this->files($request->uploads),
            $server,
            // Symfony takes a stream: a body spooled to a temp file is never loaded whole.
            ($request->bodyFile ?? null) !== null ? $request->bodyStream() : $request->body,
        );
    }

    /**
     * @param array<array-key, mixed> $files rr's uploads, nested like their field names
     * @return array<array-key, mixed> the same tree with UploadedFile leaves (PHP's array
     *     for an empty field)
     */
    private function files(array $files): array
    {
        $wrapped = [];
        foreach ($files as $key => $file) {
            if (!\is_int($file['error'] ?? null)) {
                $wrapped[$key] = $this->files($file);
            } elseif ($file['error'] === \UPLOAD_ERR_NO_FILE) {
                // An empty file field as PHP describes it: FileBag makes it what it makes
                // of php-fpm's (null, or nothing in a list).
                $wrapped[$key] = ['name' => '', 'type' => '', 'tmp_name' => '', 'error' => \UPLOAD_ERR_NO_FILE, 'size' => 0];
            } else {
                // $test: rr's temp files are not PHP's uploads, so move() renames them.
                $wrapped[$key] = new ($this->uploadedFileClass)($file['tmpName'], $file['name'], $file['mime'], $file['error'], true);
            }
        }

        return $wrapped;
    }
}
