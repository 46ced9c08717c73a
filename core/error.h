// Errors that carry the context a user needs to fix the input: which file,
// which tensor, which field, and what was expected. Every bad-input path in
// sparq throws sparq::Error; the CLI turns it into "sparq: error: ..." and
// exit code 1.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace sparq {

struct ErrorContext {
    std::string file;
    std::string tensor;
    std::string field;
};

class Error : public std::runtime_error {
public:
    explicit Error(std::string message, ErrorContext context = {})
        : std::runtime_error(compose(message, context)),
          message_(std::move(message)),
          context_(std::move(context)) {}

    const std::string& message() const { return message_; }
    const ErrorContext& context() const { return context_; }

    // Adds context from an outer layer (e.g. a loader knows the file name
    // while the parser only knows the field).
    Error with_file(const std::string& file) const {
        ErrorContext c = context_;
        if (c.file.empty()) c.file = file;
        return Error(message_, c);
    }
    Error with_tensor(const std::string& tensor) const {
        ErrorContext c = context_;
        if (c.tensor.empty()) c.tensor = tensor;
        return Error(message_, c);
    }

private:
    static std::string compose(const std::string& message, const ErrorContext& c) {
        std::string out;
        if (!c.file.empty()) out += c.file + ": ";
        if (!c.tensor.empty()) out += "tensor '" + c.tensor + "': ";
        if (!c.field.empty()) out += "field '" + c.field + "': ";
        return out + message;
    }

    std::string message_;
    ErrorContext context_;
};

// A check or gate failed on input that was read fine (exit code 3).
class CheckFailed : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
    std::ostringstream os;
    (os << ... << std::forward<Args>(args));
    return os.str();
}
}  // namespace detail

// Builds a message from streamable pieces: fail("expected ", n, " bytes").
template <typename... Args>
[[noreturn]] void fail(Args&&... args) {
    throw Error(detail::concat(std::forward<Args>(args)...));
}

template <typename... Args>
[[noreturn]] void fail_in(const ErrorContext& context, Args&&... args) {
    throw Error(detail::concat(std::forward<Args>(args)...), context);
}

}  // namespace sparq
