// The BPE model of a tokenizer.json (model.vocab, model.merges, unk_token,
// byte_fallback, fuse_unk, ignore_merges): one pre-tokenized word's bytes
// become GPT-2's byte-level characters, which are merged by rank, lowest
// first and leftmost among equals, with a priority queue (O(n log n) per
// word) as tokenizers' Word::merge_all does. This is the encoder's inner
// loop, so it lives apart from the added-token and pre-tokenizer steps
// that feed it words (bpe_tokenizer.h puts the three together).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer_json.h"

namespace sparq::bpe {

// Merges as (left id, right id) -> (rank, merged id), in an open-addressing
// table: the lookup is the encoder's inner loop.
class MergeTable {
public:
    struct Entry {
        uint64_t key = kEmpty;
        int32_t rank = 0;
        int32_t merged = 0;
    };

    void reserve(size_t count);
    // A later merge of the same pair replaces the earlier one, as in
    // tokenizers' HashMap collect.
    void insert_or_assign(int32_t left, int32_t right, int32_t rank, int32_t merged);

    const Entry* find(int32_t left, int32_t right) const {
        const uint64_t key = make_key(left, right);
        for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
            if (slots_[i].key == key) return &slots_[i];
            if (slots_[i].key == kEmpty) return nullptr;
        }
    }

private:
    static constexpr uint64_t kEmpty = ~uint64_t{0};
    static uint64_t make_key(int32_t left, int32_t right) {
        return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
    }
    size_t slot_of(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 20) & mask_; }

    std::vector<Entry> slots_;
    size_t mask_ = 0;
};

class BpeModel {
public:
    // Throws sparq::Error when model.unk_token or a merge's tokens are not
    // in model.vocab.
    explicit BpeModel(const HfTokenizerJson& spec);

    // The model.vocab id of `token` (added tokens are not here), or -1.
    int32_t id_of(const std::string& token) const {
        const auto it = ids_.find(token);
        return it == ids_.end() ? -1 : it->second;
    }
    int32_t unk_id() const { return unk_id_; }

    struct Symbol {
        int32_t id;
        int32_t prev;
        int32_t next;
        bool removed;
    };
    struct MergeCandidate {
        int32_t rank;
        int32_t pos;
        int32_t merged;
    };

    // Buffers reused across the words of one encode call, and the ids of
    // the words seen so far in the call (natural text repeats its words:
    // the cache roughly halves the time on a long text).
    struct Scratch {
        struct WordHash {
            using is_transparent = void;
            size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
        };
        struct CachedWord {
            uint32_t offset;
            uint32_t count;
        };
        std::vector<Symbol> symbols;
        std::vector<MergeCandidate> queue;
        std::string mapped;
        std::unordered_map<std::string, CachedWord, WordHash, std::equal_to<>> cache;
        std::vector<int32_t> cached_ids;
    };

    // Appends the ids of one word (raw bytes), through the call's cache.
    void encode_word(std::string_view word, Scratch& scratch, std::vector<int32_t>& ids) const;

private:
    // Words up to this long are cached, up to this many per encode call.
    static constexpr size_t kMaxCachedWordBytes = 64;
    static constexpr size_t kMaxCachedWords = 1 << 17;

    void merge_word(std::string_view word, Scratch& scratch, std::vector<int32_t>& ids) const;

    std::unordered_map<std::string, int32_t> ids_;  // model.vocab only (what BPE looks up)
    MergeTable merges_;
    std::array<int32_t, 256> byte_ids_{};                 // id of each byte's byte-level character, or -1
    std::array<std::vector<int32_t>, 256> fallback_ids_;  // byte_fallback "<0xXX>" ids of that character's bytes
    int32_t unk_id_ = -1;
    bool fuse_unk_ = false;
    bool ignore_merges_ = false;
};

}  // namespace sparq::bpe
