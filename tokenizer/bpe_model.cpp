#include "tokenizer/bpe_model.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"

namespace sparq::bpe {

namespace {

// The queue's top is the lowest rank, then the leftmost position.
struct LaterMerge {
    bool operator()(const BpeModel::MergeCandidate& a, const BpeModel::MergeCandidate& b) const {
        return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
    }
};

}  // namespace

void MergeTable::reserve(size_t count) {
    size_t capacity = 16;
    while (capacity < count * 2) capacity *= 2;
    slots_.assign(capacity, Entry{});
    mask_ = capacity - 1;
}

void MergeTable::insert_or_assign(int32_t left, int32_t right, int32_t rank, int32_t merged) {
    const uint64_t key = make_key(left, right);
    for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
        if (slots_[i].key == kEmpty || slots_[i].key == key) {
            slots_[i] = {key, rank, merged};
            return;
        }
    }
}

BpeModel::BpeModel(const HfTokenizerJson& spec) : fuse_unk_(spec.fuse_unk), ignore_merges_(spec.ignore_merges) {
    ids_.reserve(spec.vocab.size() * 2);
    for (const auto& [token, id] : spec.vocab) ids_.emplace(token, id);

    if (spec.unk_token) {
        unk_id_ = id_of(*spec.unk_token);
        if (unk_id_ < 0) fail("model.unk_token '", *spec.unk_token, "' is not in the vocabulary");
    }

    merges_.reserve(spec.merges.size());
    for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
        const auto& [left, right] = spec.merges[rank];
        const int32_t a = id_of(left);
        const int32_t b = id_of(right);
        const int32_t merged = id_of(left + right);
        if (a < 0 || b < 0 || merged < 0) {
            fail("merge ", rank, " ('", left, " ", right, "') uses a token not in the vocabulary");
        }
        merges_.insert_or_assign(a, b, static_cast<int32_t>(rank), merged);
    }

    for (int byte = 0; byte < 256; ++byte) {
        const std::string& ch = byte_level_char(static_cast<uint8_t>(byte));
        byte_ids_[byte] = id_of(ch);
        if (byte_ids_[byte] < 0 && spec.byte_fallback) {
            // tokenizers looks up "<0xXX>" for each UTF-8 byte of the character.
            std::vector<int32_t> ids;
            for (const char c : ch) {
                char name[8];
                std::snprintf(name, sizeof(name), "<0x%02X>", static_cast<unsigned>(static_cast<uint8_t>(c)));
                const int32_t found = id_of(name);
                if (found < 0) {
                    ids.clear();
                    break;
                }
                ids.push_back(found);
            }
            fallback_ids_[byte] = std::move(ids);
        }
    }
}

void BpeModel::encode_word(std::string_view word, Scratch& scratch, std::vector<int32_t>& ids) const {
    if (word.size() > kMaxCachedWordBytes) {
        merge_word(word, scratch, ids);
        return;
    }
    if (const auto it = scratch.cache.find(word); it != scratch.cache.end()) {
        const auto first = scratch.cached_ids.begin() + it->second.offset;
        ids.insert(ids.end(), first, first + it->second.count);
        return;
    }
    const size_t before = ids.size();
    merge_word(word, scratch, ids);
    if (scratch.cache.size() < kMaxCachedWords) {
        const auto offset = static_cast<uint32_t>(scratch.cached_ids.size());
        scratch.cached_ids.insert(scratch.cached_ids.end(), ids.begin() + static_cast<ptrdiff_t>(before), ids.end());
        scratch.cache.emplace(std::string(word), Scratch::CachedWord{offset, static_cast<uint32_t>(ids.size() - before)});
    }
}

void BpeModel::merge_word(std::string_view word, Scratch& scratch, std::vector<int32_t>& ids) const {
    if (ignore_merges_) {
        std::string& mapped = scratch.mapped;
        mapped.clear();
        for (char c : word) mapped += byte_level_char(static_cast<uint8_t>(c));
        if (const auto it = ids_.find(mapped); it != ids_.end()) {
            ids.push_back(it->second);
            return;
        }
    }

    // The word's byte-level characters as symbols (tokenizers' merge_word).
    std::vector<Symbol>& symbols = scratch.symbols;
    symbols.clear();
    auto add_symbol = [&](int32_t id) {
        const auto index = static_cast<int32_t>(symbols.size());
        if (index > 0) symbols.back().next = index;
        symbols.push_back({id, index - 1, -1, false});
    };
    bool pending_unk = false;
    for (char c : word) {
        const auto byte = static_cast<uint8_t>(c);
        if (byte_ids_[byte] >= 0) {
            if (pending_unk) add_symbol(unk_id_), pending_unk = false;
            add_symbol(byte_ids_[byte]);
            continue;
        }
        if (!fallback_ids_[byte].empty()) {
            // tokenizers adds byte-fallback tokens without flushing a pending unk.
            for (const int32_t id : fallback_ids_[byte]) add_symbol(id);
            continue;
        }
        if (unk_id_ >= 0) {
            if (pending_unk && !fuse_unk_) add_symbol(unk_id_);
            pending_unk = true;
        }
        // No unk token: tokenizers drops the character.
    }
    if (pending_unk) add_symbol(unk_id_);
    if (symbols.empty()) return;

    if (symbols.size() > 1) {
        // A binary heap in the reused scratch buffer; its top is the
        // lowest rank, then the leftmost position.
        std::vector<MergeCandidate>& queue = scratch.queue;
        queue.clear();
        const LaterMerge later;
        auto push = [&](const MergeCandidate& c) {
            queue.push_back(c);
            std::push_heap(queue.begin(), queue.end(), later);
        };
        for (size_t i = 0; i + 1 < symbols.size(); ++i) {
            if (const auto* m = merges_.find(symbols[i].id, symbols[i + 1].id)) {
                queue.push_back({m->rank, static_cast<int32_t>(i), m->merged});
            }
        }
        std::make_heap(queue.begin(), queue.end(), later);
        while (!queue.empty()) {
            std::pop_heap(queue.begin(), queue.end(), later);
            const MergeCandidate top = queue.back();
            queue.pop_back();
            Symbol& current = symbols[top.pos];
            if (current.removed || current.next < 0) continue;
            const int32_t next_pos = current.next;
            const Symbol right = symbols[next_pos];
            // A stale entry: the pair at this position changed since.
            const auto* now = merges_.find(current.id, right.id);
            if (!now || now->merged != top.merged) continue;

            current.id = top.merged;
            current.next = right.next;
            symbols[next_pos].removed = true;
            if (right.next >= 0) symbols[right.next].prev = top.pos;

            if (current.prev >= 0) {
                if (const auto* m = merges_.find(symbols[current.prev].id, current.id)) {
                    push({m->rank, current.prev, m->merged});
                }
            }
            if (current.next >= 0) {
                if (const auto* m = merges_.find(current.id, symbols[current.next].id)) {
                    push({m->rank, top.pos, m->merged});
                }
            }
        }
    }
    for (const Symbol& s : symbols) {
        if (!s.removed) ids.push_back(s.id);
    }
}

}  // namespace sparq::bpe
