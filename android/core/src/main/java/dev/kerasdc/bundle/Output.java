package dev.kerasdc.bundle;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;

/**
 * Where a restore writes R, strictly in order from its first byte to its last, and hashes it on
 * the way: every byte passes the SHA-256 once, while it is still in the cache, so checking the
 * result needs no second pass over R.
 *
 * <p>Decoders write into a window {@code buf[pos, limit)} and call {@link #flush} when it is full.
 * For a byte-array target ({@link ToArray}) the window is a slice of at most {@link #CHUNK} bytes
 * of the target itself: bytes are written once, in place, and a flush only hashes what the window
 * holds and moves it on. Other targets ({@link ToBuffer}, {@link ToStream}) stage bytes in a
 * {@link #CHUNK}-byte array that a flush hashes and passes on.
 *
 * <p>Within a segment every write is a whole number of elements, and a segment starts with a
 * flush, after which the window's length is a multiple of every element size (or reaches the end
 * of R): an element never straddles the end of a window.
 */
abstract class Output {
  /** Window length; a multiple of every element size. */
  static final int CHUNK = 1 << 16;

  /** Zero runs at least this long bypass a staging buffer. */
  private static final int LONG_RUN = 4096;

  private static final byte[] ZEROS = new byte[CHUNK];

  /** Decoders write at {@code buf[pos]}, up to {@code buf[limit - 1]}. */
  final byte[] buf;

  /**
   * {@link #buf} as a little-endian ByteBuffer, for writing a 2-, 4- or 8-byte element with one
   * store ({@code putInt(index, value)}: the index is into {@code buf}).
   */
  final ByteBuffer view;

  int pos;
  int limit;

  /**
   * Whether {@code buf} holds zeros from {@link #pos} on (to the end of R for a new array, to the
   * end of the staging buffer, which a flush clears), so that zero runs only advance {@link #pos}.
   */
  final boolean clean;

  /** The SHA-256 of R so far; null in an output that passes its bytes on to another one. */
  final MessageDigest digest;

  Output(byte[] buf, boolean clean) {
    this(buf, clean, sha256());
  }

  Output(byte[] buf, boolean clean, MessageDigest digest) {
    this.buf = buf;
    this.view = ByteBuffer.wrap(buf).order(ByteOrder.LITTLE_ENDIAN);
    this.clean = clean;
    this.digest = digest;
  }

  static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("this Java platform has no SHA-256", e);
    }
  }

  /** Writes bytes (the skeleton's gaps, RAW payloads). */
  abstract void put(byte[] src, int offset, int length);

  /**
   * Copies into the window {@code buf[pos, limit)}, calling {@link #flush()} whenever it is full
   * (for outputs whose flush empties or moves the window).
   */
  final void putThroughWindow(byte[] src, int offset, int length) {
    while (length > 0) {
      if (pos == limit) {
        flush();
      }
      int n = Math.min(length, limit - pos);
      System.arraycopy(src, offset, buf, pos, n);
      pos += n;
      offset += n;
      length -= n;
    }
  }

  /** Hashes and passes on the window's bytes, and opens the next window. */
  abstract void flush();

  /** Bytes written so far. */
  abstract long written();

  /** Writes {@code count} zero bytes. */
  final void zeros(long count) {
    if (count >= LONG_RUN && skipZeros(count)) {
      return;
    }
    if (clean) {
      while (count > limit - pos) {
        count -= limit - pos;
        pos = limit;
        flush();
      }
      pos += (int) count;
      return;
    }
    while (count > 0) {
      if (pos == limit) {
        flush();
      }
      int n = (int) Math.min(count, limit - pos);
      Arrays.fill(buf, pos, pos + n, (byte) 0);
      pos += n;
      count -= n;
    }
  }

  /**
   * Writes a long zero run without staging it, if this output can; {@code false} if it cannot.
   */
  boolean skipZeros(long count) {
    return false;
  }

  /**
   * Writes {@code count} copies of the {@code esize}-byte pattern at {@code src[offset]}. The
   * window's length must be a multiple of {@code esize} (true within one segment).
   */
  final void repeat(byte[] src, int offset, int esize, long count) {
    long bytes = count * esize;
    while (bytes > 0) {
      if (pos == limit) {
        flush();
      }
      int n = (int) Math.min(bytes, limit - pos);
      System.arraycopy(src, offset, buf, pos, esize);
      for (int done = esize; done < n; ) { // doubling copies keep the pattern's phase
        int k = Math.min(done, n - done);
        System.arraycopy(buf, pos, buf, pos + done, k);
        done += k;
      }
      pos += n;
      bytes -= n;
    }
  }

  /** SHA-256 of everything written; call after {@link #flush}. */
  final byte[] digest() {
    return digest.digest();
  }

  /** Writes straight into a byte array, from a start index. */
  static final class ToArray extends Output {
    private final int start;
    private final int end;
    /** Bytes {@code [start, hashed)} have been hashed. */
    private int hashed;

    /**
     * @param length bytes that will be written (R's size)
     * @param zeroed whether {@code target[start, start + length)} holds zeros (a new array)
     */
    ToArray(byte[] target, int start, int length, boolean zeroed) {
      super(target, zeroed);
      this.start = start;
      this.end = start + length;
      this.pos = start;
      this.hashed = start;
      this.limit = Math.min(end, start + CHUNK);
    }

    @Override
    void put(byte[] src, int offset, int length) {
      putThroughWindow(src, offset, length);
    }

    @Override
    void flush() {
      if (pos > hashed) {
        digest.update(buf, hashed, pos - hashed);
        hashed = pos;
      }
      limit = pos + Math.min(end - pos, CHUNK);
    }

    @Override
    long written() {
      return pos - start;
    }
  }

  /**
   * Stages bytes in a {@link #CHUNK}-byte array and emits it when full. A flush clears what it
   * emitted, so the staging buffer is {@link #clean}.
   */
  abstract static class Staged extends Output {
    private long emitted;

    Staged() {
      super(new byte[CHUNK], true);
      this.limit = CHUNK;
    }

    abstract void emit(byte[] src, int offset, int length);

    /** Writes {@code length <= CHUNK} zero bytes. */
    void emitZeros(int length) {
      emit(ZEROS, 0, length);
    }

    @Override
    final void put(byte[] src, int offset, int length) {
      if (length == 0) {
        return;
      }
      flush();
      digest.update(src, offset, length);
      emit(src, offset, length);
      emitted += length;
    }

    @Override
    final boolean skipZeros(long count) {
      flush();
      while (count > 0) {
        int n = (int) Math.min(count, CHUNK);
        digest.update(ZEROS, 0, n);
        emitZeros(n);
        emitted += n;
        count -= n;
      }
      return true;
    }

    @Override
    final void flush() {
      if (pos > 0) {
        digest.update(buf, 0, pos);
        emit(buf, 0, pos);
        emitted += pos;
        Arrays.fill(buf, 0, pos, (byte) 0);
        pos = 0;
      }
    }

    @Override
    final long written() {
      return emitted + pos;
    }
  }

  /** Writes into a ByteBuffer (heap or direct) from its position, advancing a duplicate. */
  static final class ToBuffer extends Staged {
    private final ByteBuffer target;
    private final boolean zeroed;

    /** @param zeroed whether the target is known to hold zeros from its position on */
    ToBuffer(ByteBuffer target, boolean zeroed) {
      this.target = target.duplicate();
      this.zeroed = zeroed;
    }

    @Override
    void emit(byte[] src, int offset, int length) {
      target.put(src, offset, length);
    }

    @Override
    void emitZeros(int length) {
      if (zeroed) {
        target.position(target.position() + length);
      } else {
        super.emitZeros(length);
      }
    }
  }

  /** Writes to a stream; an IOException comes back as {@link WriteFailure}. */
  static final class ToStream extends Staged {
    private final OutputStream target;

    ToStream(OutputStream target) {
      this.target = target;
    }

    @Override
    void emit(byte[] src, int offset, int length) {
      try {
        target.write(src, offset, length);
      } catch (IOException e) {
        throw new WriteFailure(e);
      }
    }
  }

  /** Carries an IOException of {@link ToStream} through the decoders. */
  static final class WriteFailure extends RuntimeException {
    private static final long serialVersionUID = 1L;

    WriteFailure(IOException cause) {
      super(cause);
    }

    IOException ioException() {
      return (IOException) getCause();
    }
  }
}
