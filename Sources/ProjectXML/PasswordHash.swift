import CCrypt
import HavelCore

/// sha512-crypt (`$6$salt$hash`, 5000 rounds as ELBE's preprocess uses) through libcrypt, so that
/// `openssl passwd -6 -salt SALT PASSWORD` and `/etc/shadow` logins agree with what Havel writes.
public enum PasswordHash {
    static let saltAlphabet = Array("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

    public static func randomSalt(length: Int = 16) -> String {
        var generator = SystemRandomNumberGenerator()
        return String((0..<length).map { _ in saltAlphabet.randomElement(using: &generator)! })
    }

    /// Hashes `password` with sha512-crypt; `salt` defaults to 16 random characters.
    public static func sha512crypt(_ password: String, salt: String = randomSalt()) throws(HavelError) -> String {
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
