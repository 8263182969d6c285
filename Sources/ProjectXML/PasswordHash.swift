import CCrypt
import HavelCore

/// sha512-crypt (`$6$salt$hash`, 5000 rounds as ELBE's preprocess uses) through libcrypt, so that
/// `openssl passwd -6 -salt SALT PASSWORD` and `/etc/shadow` logins agree with what Havel writes.
public enum PasswordHash {
    static let saltAlphabet = Array("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

    /// The salt of a plain-text password: 16 characters from SHA-256 over `havel-passwd`, the project's
    /// name and version and the user, NUL-separated, so that two builds of one project write the same
    /// /etc/shadow while users (and projects) still get different salts. Each of the first 16 bytes picks
    /// one of the 64 salt characters (256 is a multiple of 64, so no character is favoured).
    public static func projectSalt(project: String, version: String, user: String) -> String {
        var message = Array("havel-passwd".utf8)
        for part in [project, version, user] {
            message.append(0)
            message.append(contentsOf: part.utf8)
        }
        return String(SHA256.hash(message).prefix(16).map { saltAlphabet[Int($0 % 64)] })
    }

    /// Hashes `password` with sha512-crypt and the given salt (1 to 16 characters of [./0-9A-Za-z]).
    public static func sha512crypt(_ password: String, salt: String) throws(HavelError) -> String {
        guard salt.allSatisfy({ saltAlphabet.contains($0) }), !salt.isEmpty, salt.count <= 16 else {
            throw HavelError(.invalidArgument, "salt \"\(salt)\" must be 1 to 16 characters of [./0-9A-Za-z]")
        }
        let data = UnsafeMutablePointer<crypt_data>.allocate(capacity: 1)
        defer { data.deallocate() }
        data.initialize(to: crypt_data())
        guard let result = crypt_r(password, "$6$" + salt + "$", data) else {
            throw HavelError(.internalError, "libcrypt could not hash the password")
        }
        let hash = String(cString: result)
        guard hash.hasPrefix("$6$") else { throw HavelError(.internalError, "libcrypt could not hash the password") }
        return hash
    }
}
