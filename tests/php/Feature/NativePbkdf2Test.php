<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

use PHPUnit\Framework\TestCase;

/**
 * RR\pbkdf2_sha1() against PHP's hash_pbkdf2(), and RR\Nextcloud\MemoizedAes with it against
 * phpseclib's AES, in a php process with the built extension loaded.
 */
final class NativePbkdf2Test extends TestCase
{
    public function testSameBytesAsHashPbkdf2(): void
    {
        $out = Server::php(<<<'PHP'
            $cases = 0;
            foreach ([0, 1, 20, 63, 64, 65, 128, 300] as $passwordLength) {
                foreach ([0, 8, 14, 100] as $saltLength) {
                    foreach ([1, 2, 1000] as $iterations) {
                        foreach ([1, 16, 20, 21, 32, 64] as $length) {
                            $password = $passwordLength > 0 ? random_bytes($passwordLength) : '';
                            $salt = $saltLength > 0 ? random_bytes($saltLength) : '';
                            $ours = RR\pbkdf2_sha1($password, $salt, $iterations, $length);
                            $php = hash_pbkdf2('sha1', $password, $salt, $iterations, $length, true);
                            if ($ours !== $php) {
                                echo "differs: ", bin2hex($password), " ", bin2hex($salt), " $iterations $length\n";
                                exit(1);
                            }
                            $cases++;
                        }
                    }
                }
            }
            echo "$cases same\n";
            PHP);
        self::assertSame("576 same\n", $out);
    }

    public function testBadValuesThrowValueErrorNamingThem(): void
    {
        $out = Server::php(<<<'PHP'
            foreach ([[0, 16], [-3, 16], [4294967296, 16], [1, 0], [1, -1], [1, 1048577]] as [$iterations, $length]) {
                try {
                    RR\pbkdf2_sha1('password', 'salt', $iterations, $length);
                    echo "no error for $iterations $length\n";
                } catch (\ValueError $e) {
                    echo $e->getMessage(), "\n";
                }
            }
            PHP);
        self::assertSame(
            "RR\\pbkdf2_sha1(): iterations must be between 1 and 4294967295, got 0\n"
            . "RR\\pbkdf2_sha1(): iterations must be between 1 and 4294967295, got -3\n"
            . "RR\\pbkdf2_sha1(): iterations must be between 1 and 4294967295, got 4294967296\n"
            . "RR\\pbkdf2_sha1(): length must be between 1 and 1048576 bytes, got 0\n"
            . "RR\\pbkdf2_sha1(): length must be between 1 and 1048576 bytes, got -1\n"
            . "RR\\pbkdf2_sha1(): length must be between 1 and 1048576 bytes, got 1048577\n",
            $out,
        );
    }

    public function testMemoizedAesWithTheNativeKdfMatchesPhpseclib(): void
    {
        $root = (string)getenv('RR_NEXTCLOUD_ROOT');
        if ($root === '' || !is_file($root . '/3rdparty/autoload.php')) {
            self::markTestSkipped('set RR_NEXTCLOUD_ROOT to a Nextcloud install (phpseclib comes from its 3rdparty/)');
        }
        $out = Server::php(<<<'PHP'
            require getenv('RR_NEXTCLOUD_ROOT') . '/3rdparty/autoload.php';
            require getenv('RR_REPO') . '/php/autoload.php';
            $plain = new phpseclib\Crypt\AES();
            $memo = new RR\Nextcloud\MemoizedAes();
            $n = 0;
            foreach (['one', 'one', str_repeat('long', 40), '', 'one'] as $password) {
                foreach ([$plain, $memo] as $cipher) {
                    $cipher->setPassword(substr(hash_hkdf('sha512', $password === '' ? 'x' : $password), 0, 32));
                    $cipher->setIV(str_repeat("\1", 16));
                }
                $text = "text for $password";
                $a = $plain->encrypt($text);
                if ($a !== $memo->encrypt($text) || $memo->decrypt($a) !== $text) {
                    echo "differs for '$password'\n";
                    exit(1);
                }
                $n++;
            }
            echo function_exists('RR\\pbkdf2_sha1') ? 'native' : 'hash_pbkdf2', ": $n same, ", $memo->remembered(), " keys\n";
            PHP, ['RR_REPO' => \dirname(__DIR__, 3)]);
        self::assertSame("native: 5 same, 3 keys\n", $out);
    }
}
